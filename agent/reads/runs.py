"""Reading runs: a filtered, paged run list and one run's full trace with its pinned version.

Every role may read runs (managers read everything; engineers debug versions from traces;
operators follow the runs they unblocked).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.actors import READ_ROLES, Actor, require
from agent.errors import NotFound
from agent.inputs import is_record_id
from agent.platform import Platform
from agent.reads.paging import Page, check_window
from storage.engine import read_session
from storage.enums import ErrorClass, RunStatus
from storage.queries.records import TraceStep
from storage.queries.runs import (
    RunFilter,
    RunSummary,
    RunTrace,
    agent_versions,
    count_runs,
    page_runs,
    run_trace,
)
from storage.queries.usage import RunUsage, run_usage

__all__ = [
    "RUN_PAGE",
    "RunChoices",
    "RunFilter",
    "RunSummary",
    "RunTrace",
    "RunUsage",
    "TraceStep",
    "find_runs",
    "model_usage",
    "run_choices",
    "run_details",
]

RUN_PAGE = 50


def find_runs(
    platform: Platform,
    actor: Actor,
    flt: RunFilter | None = None,
    *,
    offset: int = 0,
    limit: int = RUN_PAGE,
) -> Page[RunSummary]:
    """The runs ``flt`` matches, newest first: ``limit`` of them after the first ``offset``.

    Raises:
        Forbidden: the actor holds no role.
        InvalidInput: the window is out of range (``agent.reads.paging``).
    """
    require(actor, READ_ROLES, "read runs")
    check_window(offset, limit, "runs")
    flt = flt or RunFilter()
    with read_session(platform.engine) as session:
        total = count_runs(flt, session=session)
        runs = page_runs(flt, session=session, limit=limit, offset=offset) if total else []
    return Page(tuple(runs), total, offset, limit)


@dataclass(frozen=True)
class RunChoices:
    """What runs can be filtered by.

    Attributes:
        versions: each agent's version numbers, by agent name.
        statuses: every run status.
        error_classes: every error class of the taxonomy.
    """

    versions: dict[str, tuple[int, ...]]
    statuses: tuple[RunStatus, ...] = tuple(RunStatus)
    error_classes: tuple[ErrorClass, ...] = tuple(ErrorClass)

    @property
    def agents(self) -> tuple[str, ...]:
        """The agents' names, sorted."""
        return tuple(sorted(self.versions))

    def versions_of(self, agent: str | None) -> tuple[int, ...]:
        """The version numbers of ``agent``, or of every agent when None."""
        if agent is not None:
            return self.versions.get(agent, ())
        return tuple(sorted({n for numbers in self.versions.values() for n in numbers}))


def run_choices(platform: Platform, actor: Actor) -> RunChoices:
    """Agents and their versions, statuses and error classes, to filter runs by.

    Raises:
        Forbidden: the actor holds no role.
    """
    require(actor, READ_ROLES, "read runs")
    with read_session(platform.engine) as session:
        pairs = agent_versions(session=session)
    versions: dict[str, list[int]] = {}
    for agent, number in pairs:
        versions.setdefault(agent, []).append(number)
    return RunChoices({agent: tuple(numbers) for agent, numbers in versions.items()})


def run_details(platform: Platform, actor: Actor, run_id: int) -> RunTrace:
    """One run: its task, steps, tool calls, reviews and decisions, and its pinned version.

    Raises:
        Forbidden: the actor holds no role.
        NotFound: there is no such run.
    """
    require(actor, READ_ROLES, f"read run {run_id}")
    if not is_record_id(run_id):  # no row can have it; the database would refuse the query
        raise NotFound(f"run {run_id} does not exist.")
    with read_session(platform.engine) as session:
        trace = run_trace(run_id, session=session)
    if trace is None:
        raise NotFound(f"run {run_id} does not exist.")
    return trace


def model_usage(platform: Platform, actor: Actor, run_id: int) -> RunUsage | None:
    """The model calls of a run planned by a language model: tokens, cost, latency and HTTP
    attempts per call; None when the run asked no model.

    Raises:
        Forbidden: the actor holds no role.
    """
    require(actor, READ_ROLES, f"read run {run_id}")
    if not is_record_id(run_id):
        return None
    with read_session(platform.engine) as session:
        usage = run_usage(run_id, session=session)
    return usage if usage is not None and usage.model_calls else None
