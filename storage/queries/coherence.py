"""The two reasoning-coherence proxies of DESIGN.md, per version, for production traffic.

*Proposal validity* is the share of proposed calls the gate found valid and in scope: of the
gate's first decisions on proposed calls (the re-check of a call a person approved is not a new
proposal), those not refused at its ``scope`` or ``arguments`` stage. Evaluations compute the
same share per case (``agent.evals.metrics``).

*Path efficiency* compares a run's tool calls with the shortest known path for its kind of
task, its ``intent``: the fewest tool calls that completed a task of that intent, whether an
evaluation case of the agent declares it (``shortest_path``) or a succeeded production run of
the agent in the time range took it, across all of the agent's versions. A succeeded run's
efficiency is that shortest path divided by the calls it proposed (1.0: the shortest known);
a version's is the mean over its succeeded runs with an intent and at least one call. Runs
without an intent, and runs that did not succeed, are not measured. The median of the calls
those runs proposed is given beside it, as the plain figure.

Everything is aggregated by the database: runs are grouped by (version, intent, calls), a
handful of groups, and never fetched one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, col

from storage.enums import RunStatus, StepKind
from storage.models import Agent, AgentVersion, EvalCase, EvalSuite, Run, Step, Task
from storage.queries.kpi_sections import GateCount, Scope, rate

# A proposal refused by these gate stages was malformed or out of scope.
INCOHERENT_STAGES = ("scope", "arguments")
COHERENCE_COLUMNS = [
    "agent",
    "version",
    "proposals",
    "invalid_or_out_of_scope",
    "proposal_validity",
    "runs_measured",
    "path_efficiency",
    "median_tool_calls",
]


@dataclass(frozen=True)
class PathGroup:
    """Succeeded runs of one version and intent that proposed the same number of calls."""

    agent_id: int
    version_id: int
    intent: str
    calls: int
    runs: int


def path_groups(scope: Scope, *, session: Session) -> list[PathGroup]:
    """The succeeded runs in ``scope`` with an intent and at least one gated call, grouped by
    version, intent and number of calls."""
    per_run = (
        sa.select(
            col(Step.run_id).label("run_id"),
            sa.func.count(sa.distinct(col(Step.call_id))).label("calls"),
        )
        .where(col(Step.kind) == StepKind.APPLY_GUARDRAIL, col(Step.call_id).is_not(None))
        .where(*scope.run_ids(Step.run_id))
        .group_by(col(Step.run_id))
        .subquery()
    )
    intent = col(Task.input)["intent"].as_string()
    rows = session.execute(
        sa.select(col(Run.agent_id), col(Run.version_id), intent, per_run.c.calls, sa.func.count())
        .join(per_run, per_run.c.run_id == col(Run.id))
        .join(Task, col(Task.id) == col(Run.task_id))
        .where(col(Run.status) == RunStatus.SUCCEEDED, intent.is_not(None), per_run.c.calls > 0)
        .group_by(col(Run.agent_id), col(Run.version_id), intent, per_run.c.calls)
    ).all()
    return [PathGroup(int(a), int(v), str(i), int(c), int(n)) for a, v, i, c, n in rows]


def case_paths(agent_ids: Iterable[int], *, session: Session) -> dict[tuple[int, str], int]:
    """The shortest path evaluation cases declare, by (agent id, intent)."""
    ids = sorted(set(agent_ids))
    if not ids:
        return {}
    intent = col(EvalCase.input)["intent"].as_string()
    rows = session.execute(
        sa.select(col(EvalSuite.agent_id), intent, sa.func.min(col(EvalCase.shortest_path)))
        .join(EvalSuite, col(EvalSuite.id) == col(EvalCase.suite_id))
        .where(
            col(EvalSuite.agent_id).in_(ids),
            col(EvalCase.shortest_path) > 0,
            col(EvalCase.retired).is_(False),
            intent.is_not(None),
        )
        .group_by(col(EvalSuite.agent_id), intent)
    ).all()
    return {(int(agent), str(name)): int(n) for agent, name, n in rows}


def shortest_paths(
    observed: Sequence[PathGroup], cases: dict[tuple[int, str], int]
) -> dict[tuple[int, str], int]:
    """The shortest known path per (agent id, intent): the fewer of the cases' and the
    observed succeeded runs' calls."""
    shortest = dict(cases)
    for group in observed:
        key = (group.agent_id, group.intent)
        shortest[key] = min(shortest.get(key, group.calls), group.calls)
    return shortest


def coherence_kpis(
    decisions: Sequence[GateCount],
    scope: Scope,
    baseline: Scope | None = None,
    *,
    session: Session,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Proposal validity and path efficiency per version, and over the whole scope.

    Args:
        decisions: the gate's decisions in ``scope`` (``kpi_sections.gate_decisions``).
        scope: the runs measured.
        baseline: the runs whose shortest paths count as known: ``scope`` without its
            version (None: ``scope`` itself). The measured runs are those of its groups
            that are of ``scope``'s versions, so the runs are grouped once.
        session: an open session.

    Returns:
        One row per version (``COHERENCE_COLUMNS``), and the same figures over every version.
    """
    observed = path_groups(baseline or scope, session=session)
    measured = [
        g for g in observed if scope.version_ids is None or g.version_id in scope.version_ids
    ]
    agent_ids = {g.agent_id for g in observed} | {g.agent_id for g in measured}
    shortest = shortest_paths(observed, case_paths(agent_ids, session=session))
    proposals: dict[int, list[int]] = {}
    for d in decisions:
        if d.authorized:
            continue
        seen = proposals.setdefault(d.version_id, [0, 0])
        seen[0] += d.count
        if d.effect == "deny" and d.stage in INCOHERENT_STAGES:
            seen[1] += d.count
    paths: dict[int, list[PathGroup]] = {}
    for group in measured:
        paths.setdefault(group.version_id, []).append(group)
    names = _version_names(set(proposals) | set(paths), session=session)
    rows = [
        _row(names[vid], proposals.get(vid, [0, 0]), paths.get(vid, []), shortest)
        for vid in sorted(names, key=lambda v: names[v])
    ]
    total = _row(
        ("", 0),
        [sum(p[0] for p in proposals.values()), sum(p[1] for p in proposals.values())],
        measured,
        shortest,
    )
    overall = {
        "checked": total["proposals"],
        "invalid_or_out_of_scope": total["invalid_or_out_of_scope"],
        "valid_rate": total["proposal_validity"],
        "path_runs": total["runs_measured"],
        "path_efficiency": total["path_efficiency"],
        "median_tool_calls": total["median_tool_calls"],
    }
    return pd.DataFrame(rows, columns=COHERENCE_COLUMNS), overall


def _row(
    name: tuple[str, int],
    proposals: Sequence[int],
    groups: Sequence[PathGroup],
    shortest: dict[tuple[int, str], int],
) -> dict[str, Any]:
    runs = sum(g.runs for g in groups)
    efficiency = sum(g.runs * shortest[g.agent_id, g.intent] / g.calls for g in groups)
    checked, invalid = proposals
    return {
        "agent": name[0],
        "version": name[1],
        "proposals": checked,
        "invalid_or_out_of_scope": invalid,
        "proposal_validity": rate(checked - invalid, checked),
        "runs_measured": runs,
        "path_efficiency": round(efficiency / runs, 4) if runs else None,
        "median_tool_calls": _median(groups),
    }


def _median(groups: Sequence[PathGroup]) -> float | None:
    """The median of the calls of the runs the groups count (the mean of the two middle ones
    when they are an even number)."""
    runs = sum(g.runs for g in groups)
    if not runs:
        return None
    ordered = sorted(groups, key=lambda g: g.calls)

    def nth(n: int) -> int:
        for group in ordered:
            if n < group.runs:
                return group.calls
            n -= group.runs
        raise IndexError(n)  # pragma: no cover - n < runs

    return (nth((runs - 1) // 2) + nth(runs // 2)) / 2


def _version_names(version_ids: set[int], *, session: Session) -> dict[int, tuple[str, int]]:
    if not version_ids:
        return {}
    rows = session.execute(
        sa.select(col(AgentVersion.id), col(Agent.name), col(AgentVersion.number))
        .join(Agent, col(Agent.id) == col(AgentVersion.agent_id))
        .where(col(AgentVersion.id).in_(sorted(version_ids)))
    ).all()
    return {int(vid): (str(name), int(number)) for vid, name, number in rows}
