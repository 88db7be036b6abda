"""Work in flight: queued, running and parked tasks with their latest run, and the workers'
heartbeats, for the tasks view. Production's work only: an evaluation's tasks run inside the
evaluation and are neither listed nor counted here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.enums import RunStatus, TaskStatus
from storage.models import Agent, Run, Task
from storage.queries.production import is_production_task

IN_FLIGHT_TASK = (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.WAITING_REVIEW)


@dataclass(frozen=True)
class WorkItem:
    """A task not yet finished, with its latest run and who holds its lease."""

    task_id: int
    agent: str
    status: TaskStatus
    priority: int
    submitted_by: str
    source: str
    created_at: datetime
    run_id: int | None
    run_status: RunStatus | None
    lease_owner: str | None
    heartbeat_at: datetime | None
    steps: int


def work_in_flight(*, session: Session, limit: int = 100, offset: int = 0) -> list[WorkItem]:
    """Queued, running and parked tasks, newest first, each with its latest run; ``limit`` of
    them after the first ``offset`` (``tasks_by_status`` counts them all)."""
    latest_run = (
        sa.select(sa.func.max(col(Run.id)))
        .where(col(Run.task_id) == col(Task.id))
        .correlate(Task)
        .scalar_subquery()
    )
    rows = session.execute(
        sa.select(
            col(Task.id),
            col(Agent.name),
            col(Task.status),
            col(Task.priority),
            col(Task.submitted_by),
            col(Task.source),
            col(Task.created_at),
            col(Run.id).label("run_id"),
            col(Run.status).label("run_status"),
            col(Run.lease_owner),
            col(Run.heartbeat_at),
            col(Run.step_count),
        )
        .join(Agent, col(Agent.id) == col(Task.agent_id))
        .outerjoin(Run, col(Run.id) == latest_run)
        .where(col(Task.status).in_(IN_FLIGHT_TASK), is_production_task())
        .order_by(col(Task.created_at).desc(), col(Task.id).desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        WorkItem(
            task_id=row.id,
            agent=row.name,
            status=TaskStatus(row.status),
            priority=row.priority,
            submitted_by=row.submitted_by,
            source=row.source,
            created_at=row.created_at,
            run_id=row.run_id,
            run_status=RunStatus(row.run_status) if row.run_status else None,
            lease_owner=row.lease_owner,
            heartbeat_at=row.heartbeat_at,
            steps=row.step_count or 0,
        )
        for row in rows
    ]


def tasks_by_status(*, session: Session) -> dict[TaskStatus, int]:
    """How many production tasks are in each status."""
    rows = session.execute(
        sa.select(col(Task.status), sa.func.count())
        .where(is_production_task())
        .group_by(col(Task.status))
    ).all()
    return {TaskStatus(status): int(n) for status, n in rows}


def agents_with_active_version(*, session: Session) -> list[str]:
    """Names of the agents that can take work now."""
    return list(
        session.exec(
            select(Agent.name).where(col(Agent.active_version_id).is_not(None)).order_by(Agent.name)
        ).all()
    )
