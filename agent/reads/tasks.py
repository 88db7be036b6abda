"""Reading work in flight: queued, running and parked tasks, and whether workers are alive.

A worker heartbeats every third of its lease; one silent for longer than a lease is counted as
gone, since its runs become claimable by others from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent.actors import READ_ROLES, SUBMIT_ROLES, Actor, require
from agent.platform import Platform
from agent.reads.paging import Page, check_window
from storage.engine import read_session
from storage.enums import TaskStatus
from storage.queries.system import WorkerHeartbeat, live_workers
from storage.queries.work import (
    IN_FLIGHT_TASK,
    WorkItem,
    agents_with_active_version,
    tasks_by_status,
    work_in_flight,
)
from storage.types import utcnow

__all__ = [
    "STALE_AFTER_S",
    "WORK_PAGE",
    "WorkItem",
    "WorkOverview",
    "WorkerState",
    "submission_agents",
    "work_overview",
]

# The worker's default lease (agent.worker): a heartbeat older than this is stale.
STALE_AFTER_S = 30.0
WORK_PAGE = 100


@dataclass(frozen=True)
class WorkerState:
    """A worker and how long ago it last reported."""

    worker: WorkerHeartbeat
    age_s: float

    @property
    def stale(self) -> bool:
        """Silent for longer than a lease: its runs may already be claimed by others."""
        return self.age_s > STALE_AFTER_S


@dataclass(frozen=True)
class WorkOverview:
    """Tasks not yet finished (newest first), task counts by status, and the workers.

    Attributes:
        work: one page of the queued, running and parked tasks (its total counts them all).
        counts: how many tasks are in each status.
        workers: workers that have not stopped, latest heartbeat first.
        as_of: when this was read.
    """

    work: Page[WorkItem]
    counts: dict[TaskStatus, int]
    workers: tuple[WorkerState, ...]
    as_of: datetime

    @property
    def items(self) -> tuple[WorkItem, ...]:
        """The tasks of this page, newest first."""
        return self.work.items

    @property
    def alive(self) -> bool:
        """Whether at least one worker reported within a lease."""
        return any(not w.stale for w in self.workers)


def work_overview(
    platform: Platform,
    actor: Actor,
    *,
    offset: int = 0,
    limit: int = WORK_PAGE,
    now: datetime | None = None,
) -> WorkOverview:
    """Work in flight (one page of it, newest first), task counts and worker heartbeats.

    Raises:
        Forbidden: the actor holds no role.
        InvalidInput: the window is out of range (``agent.reads.paging``).
    """
    require(actor, READ_ROLES, "read the work in flight")
    check_window(offset, limit, "tasks")
    moment = now or utcnow()
    with read_session(platform.engine) as session:
        items = work_in_flight(session=session, limit=limit, offset=offset)
        counts = tasks_by_status(session=session)
        workers = live_workers(session=session)
    in_flight = sum(counts.get(status, 0) for status in IN_FLIGHT_TASK)
    return WorkOverview(
        Page(tuple(items), in_flight, offset, limit),
        counts,
        tuple(WorkerState(w, (moment - w.heartbeat_at).total_seconds()) for w in workers),
        moment,
    )


def submission_agents(platform: Platform, actor: Actor) -> tuple[str, ...]:
    """The agents ``actor`` can submit a task to now: those with an active version.

    Raises:
        Forbidden: the actor may not submit work.
    """
    require(actor, SUBMIT_ROLES, "submit tasks")
    with read_session(platform.engine) as session:
        return tuple(agents_with_active_version(session=session))
