"""Claiming work under leases: ready runs, runs whose worker died, and queued tasks.

On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets many workers claim concurrently without ever
taking the same row; on SQLite the write transaction (``BEGIN IMMEDIATE``) serializes claims.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from agent.runtime.state import Claim
from storage.engine import write_session
from storage.enums import RunStatus, TaskStatus
from storage.models import Agent, Run, Task, Worker
from storage.types import utcnow

log = logging.getLogger(__name__)


def claim_next(engine: Engine, owner: str, *, lease_s: float = 30.0) -> Claim | None:
    """Claim one unit of work for ``owner``, or None when nothing is ready."""
    with write_session(engine) as session:
        now = utcnow()
        run = session.exec(
            select(Run)
            .where(
                sa.or_(
                    col(Run.status) == RunStatus.READY,
                    sa.and_(col(Run.status) == RunStatus.RUNNING, col(Run.lease_expires_at) < now),
                )
            )
            .order_by(col(Run.id))
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        fresh = run is None
        task: Task | None = None
        if run is None:
            run, task = _start_run_for_next_task(session, now)
        if run is None:
            return None
        if run.status is RunStatus.RUNNING:
            log.info("run %s: lease of %s expired; %s takes over", run.id, run.lease_owner, owner)
        run.status = RunStatus.RUNNING
        run.lease_owner = owner
        run.lease_expires_at = now + timedelta(seconds=lease_s)
        run.heartbeat_at = now
        run.claims += 1
        session.add(run)
        if task is None:
            task = session.get(Task, run.task_id)
        if task is not None and task.status is not TaskStatus.RUNNING:
            task.status = TaskStatus.RUNNING
            task.updated_at = now
            session.add(task)
        session.flush()
        assert run.id is not None
        if fresh and task is not None:
            return Claim(
                run_id=run.id,
                claim_no=run.claims,
                owner=owner,
                fresh=True,
                task_id=run.task_id,
                agent_id=run.agent_id,
                version_id=run.version_id,
                task_input=dict(task.input),
            )
        return Claim(run_id=run.id, claim_no=run.claims, owner=owner)


def _start_run_for_next_task(
    session: Session, now: sa.DateTime | object
) -> tuple[Run | None, Task | None]:
    task = session.exec(
        select(Task)
        .where(col(Task.status) == TaskStatus.QUEUED)
        .order_by(col(Task.priority).desc(), col(Task.id))
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if task is None:
        return None, None
    agent = session.get(Agent, task.agent_id)
    if agent is None or agent.active_version_id is None:
        task.status = TaskStatus.FAILED
        task.updated_at = utcnow()
        session.add(task)
        log.warning("task %s: agent %s has no active version", task.id, task.agent_id)
        return None, None
    assert task.id is not None
    run = Run(
        task_id=task.id,
        agent_id=task.agent_id,
        version_id=agent.active_version_id,
        status=RunStatus.READY,
    )
    session.add(run)
    session.flush()
    return run, task


def has_ready_work(engine: Engine) -> bool:
    """Whether any run or task is claimable now (for ``steward worker --drain``)."""
    with write_session(engine) as session:
        now = utcnow()
        ready_run = session.exec(
            select(Run.id)
            .where(
                sa.or_(
                    col(Run.status) == RunStatus.READY,
                    sa.and_(col(Run.status) == RunStatus.RUNNING, col(Run.lease_expires_at) < now),
                )
            )
            .limit(1)
        ).first()
        if ready_run is not None:
            return True
        return (
            session.exec(
                select(Task.id).where(col(Task.status) == TaskStatus.QUEUED).limit(1)
            ).first()
            is not None
        )


def extend_leases(engine: Engine, owner: str, run_ids: list[int], *, lease_s: float) -> None:
    """Heartbeat: push out the leases of the runs ``owner`` is working on."""
    now = utcnow()
    with write_session(engine) as session:
        if run_ids:
            session.execute(
                sa.update(Run)
                .where(col(Run.id).in_(run_ids))
                .where(col(Run.lease_owner) == owner)
                .values(lease_expires_at=now + timedelta(seconds=lease_s), heartbeat_at=now)
            )
        worker = session.get(Worker, owner)
        if worker is not None:
            worker.heartbeat_at = now
            session.add(worker)


def release_expired_leases(engine: Engine) -> int:
    """Make runs whose worker stopped heart-beating claimable again; returns how many."""
    now = utcnow()
    with write_session(engine) as session:
        result = session.execute(
            sa.update(Run)
            .where(col(Run.status) == RunStatus.RUNNING)
            .where(col(Run.lease_expires_at) < now)
            .values(status=RunStatus.READY, lease_owner=None, lease_expires_at=None)
        )
        count: int = result.rowcount  # type: ignore[attr-defined]
    if count:
        log.info("released %d runs whose lease expired", count)
    return count
