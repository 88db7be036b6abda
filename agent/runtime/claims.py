"""Claiming work under leases: ready runs, runs whose worker died, and queued tasks.

On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets many workers claim concurrently without ever
taking the same row; on SQLite the write transaction (``BEGIN IMMEDIATE``) serializes claims.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.runtime.routing import routes_to_candidate
from agent.runtime.state import Claim
from storage.engine import read_session, write_connection, write_session
from storage.enums import RunStatus, TaskStatus
from storage.models import Run, Task, Worker
from storage.tables import AGENTS, CANARIES, RUNS, TASK_UPDATE, TASKS, set_task_status
from storage.types import UTCDateTime, utcnow

log = logging.getLogger(__name__)


# Built once (see agent.runtime.state): a worker claims after every run it finishes.
_CLAIMABLE = sa.or_(
    RUNS.c.status == RunStatus.READY,
    sa.and_(
        RUNS.c.status == RunStatus.RUNNING,
        RUNS.c.lease_expires_at < sa.bindparam("now", type_=UTCDateTime),
    ),
)
_CLAIM_COLUMNS = (RUNS.c.id, RUNS.c.task_id, RUNS.c.status, RUNS.c.lease_owner, RUNS.c.claims)
# A paused agent's work waits where it is: no run of it is claimed, no task of it started.
_PAUSED_AGENTS = sa.select(AGENTS.c.id).where(AGENTS.c.paused_at.is_not(None))
EXTERNAL_SOURCE = "gateway"
"""The source of tasks whose calls an agent outside Steward proposes (``steward gateway``): no
worker ever claims their runs (there is no planner to ask), the gateway does, call by call."""
_EXTERNAL_TASKS = sa.select(TASKS.c.id).where(TASKS.c.source == EXTERNAL_SOURCE)
# Production workers never take an evaluation's runs: its sandbox lives with its evaluation.
_CLAIMABLE_RUN = (
    sa.select(*_CLAIM_COLUMNS)
    .where(_CLAIMABLE)
    .where(RUNS.c.eval_run_id.is_(None))
    .where(RUNS.c.task_id.not_in(_EXTERNAL_TASKS))
    .where(RUNS.c.agent_id.not_in(_PAUSED_AGENTS))
    .order_by(RUNS.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_CLAIMABLE_EVAL_RUN = (
    sa.select(*_CLAIM_COLUMNS)
    .where(_CLAIMABLE)
    .where(RUNS.c.id == sa.bindparam("run_id"))
    .where(RUNS.c.eval_run_id.is_not(None))
    .with_for_update(skip_locked=True)
)
# A running canary of the agent routes a share of its new tasks to the candidate
# (``agent.runtime.routing``); the agent's pointer to it is cleared the moment it ends.
_QUEUED_TASK = (
    sa.select(
        TASKS.c.id,
        TASKS.c.agent_id,
        TASKS.c.input,
        AGENTS.c.active_version_id,
        AGENTS.c.canary_id,
        CANARIES.c.candidate_version_id,
        CANARIES.c.share,
    )
    .join(AGENTS, AGENTS.c.id == TASKS.c.agent_id)
    .outerjoin(CANARIES, CANARIES.c.id == AGENTS.c.canary_id)
    .where(TASKS.c.status == TaskStatus.QUEUED)
    .where(AGENTS.c.paused_at.is_(None))
    .order_by(TASKS.c.priority.desc(), TASKS.c.id)
    .limit(1)
    .with_for_update(skip_locked=True, of=TASKS)
)
_NEW_RUN = sa.insert(RUNS).returning(RUNS.c.id)
_TAKE_RUN = (
    sa.update(RUNS)
    .where(RUNS.c.id == sa.bindparam("run_id"))
    .values(claims=RUNS.c.claims + 1)
    .returning(RUNS.c.claims)
)
_TASK_TO_RUNNING = TASK_UPDATE.where(TASKS.c.status != TaskStatus.RUNNING)


def claim_next(engine: Engine, owner: str, *, lease_s: float = 30.0) -> Claim | None:
    """Claim one unit of work for ``owner``, or None when nothing is ready.

    A run that is ready (people decided its reviews) or whose worker died comes first; else
    the next queued task becomes a new run pinned to its agent's active version (or, for the
    share of tasks a running canary routes to it, to the canary's candidate).
    """
    now = utcnow()
    lease = {
        "status": RunStatus.RUNNING,
        "lease_owner": owner,
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "heartbeat_at": now,
    }
    with write_connection(engine) as connection:
        run = connection.execute(_CLAIMABLE_RUN, {"now": now}).first()
        if run is not None:
            return _take(connection, run, owner, lease, now)
        while True:
            task = connection.execute(_QUEUED_TASK).first()
            if task is None:
                return None
            set_task_status(
                connection,
                task.id,
                TaskStatus.RUNNING if task.active_version_id else TaskStatus.FAILED,
            )
            if task.active_version_id is not None:
                break
            log.warning("task %s: agent %s has no active version", task.id, task.agent_id)
        version_id = task.active_version_id
        if task.canary_id is not None and routes_to_candidate(task.canary_id, task.id, task.share):
            version_id = task.candidate_version_id
        run_id = connection.execute(
            _NEW_RUN,
            {
                "task_id": task.id,
                "agent_id": task.agent_id,
                "version_id": version_id,
                "canary_id": task.canary_id,
                "claims": 1,
                "created_at": now,
                **lease,
            },
        ).scalar_one()
    return Claim(
        run_id=run_id,
        claim_no=1,
        owner=owner,
        fresh=True,
        task_id=task.id,
        agent_id=task.agent_id,
        version_id=version_id,
        task_input=dict(task.input),
    )


def claim_evaluation_run(
    engine: Engine, owner: str, run_id: int, *, lease_s: float = 30.0
) -> Claim | None:
    """Claim evaluation run ``run_id`` for ``owner`` if it is ready (its evaluation drives it
    with the sandbox it belongs to), or None."""
    now = utcnow()
    lease = {
        "status": RunStatus.RUNNING,
        "lease_owner": owner,
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "heartbeat_at": now,
    }
    with write_connection(engine) as connection:
        run = connection.execute(_CLAIMABLE_EVAL_RUN, {"now": now, "run_id": run_id}).first()
        return None if run is None else _take(connection, run, owner, lease, now)


_CLAIMABLE_EXTERNAL_RUN = (
    sa.select(*_CLAIM_COLUMNS)
    .where(RUNS.c.id == sa.bindparam("run_id"))
    .where(
        sa.or_(
            RUNS.c.status.in_([RunStatus.READY, RunStatus.WAITING_REVIEW]),
            sa.and_(
                RUNS.c.status == RunStatus.RUNNING,
                RUNS.c.lease_expires_at < sa.bindparam("now", type_=UTCDateTime),
            ),
        )
    )
    .with_for_update(skip_locked=True)
)


def claim_external_run(
    engine: Engine, owner: str, run_id: int, *, lease_s: float = 30.0
) -> Claim | None:
    """Claim run ``run_id`` of an external agent for one of its calls (or to apply decisions
    people took on its reviews), or None when another call holds it now."""
    now = utcnow()
    lease = {
        "status": RunStatus.RUNNING,
        "lease_owner": owner,
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "heartbeat_at": now,
    }
    with write_connection(engine) as connection:
        run = connection.execute(_CLAIMABLE_EXTERNAL_RUN, {"now": now, "run_id": run_id}).first()
        return None if run is None else _take(connection, run, owner, lease, now)


def _take(
    connection: sa.Connection, run: Any, owner: str, lease: dict[str, Any], now: datetime
) -> Claim:
    if run.status == RunStatus.RUNNING:
        log.info("run %s: lease of %s expired; %s takes over", run.id, run.lease_owner, owner)
    claims = connection.execute(_TAKE_RUN, {"run_id": run.id, **lease}).scalar_one()
    connection.execute(
        _TASK_TO_RUNNING, {"task_id": run.task_id, "status": TaskStatus.RUNNING, "updated_at": now}
    )
    return Claim(run_id=run.id, claim_no=claims, owner=owner)


def has_open_work(engine: Engine, owner: str) -> bool:
    """Whether any task is queued, or any run is ready or running under another owner (for
    ``--drain``).

    A run another worker holds counts even while its lease holds: if that worker died, the
    lease lapses and ``owner`` takes the run over, so draining does not stop short of it. A run
    ``owner`` itself holds without working on it (its processing failed) does not count, so a
    run that fails every time cannot keep a drain going forever. A paused agent's work does not
    count: it waits for the agent to be resumed.
    """
    with read_session(engine) as session:
        open_run = session.exec(
            select(Run.id)
            .where(col(Run.eval_run_id).is_(None))
            .where(col(Run.task_id).not_in(_EXTERNAL_TASKS))
            .where(col(Run.agent_id).not_in(_PAUSED_AGENTS))
            .where(
                sa.or_(
                    col(Run.status) == RunStatus.READY,
                    sa.and_(
                        col(Run.status) == RunStatus.RUNNING,
                        sa.or_(col(Run.lease_owner).is_(None), col(Run.lease_owner) != owner),
                    ),
                )
            )
            .limit(1)
        ).first()
        if open_run is not None:
            return True
        return (
            session.exec(
                select(Task.id)
                .where(col(Task.status) == TaskStatus.QUEUED)
                .where(col(Task.agent_id).not_in(_PAUSED_AGENTS))
                .limit(1)
            ).first()
            is not None
        )


def extend_leases(
    engine: Engine,
    owner: str,
    run_ids: list[int],
    *,
    lease_s: float,
    runs_processed: int | None = None,
) -> None:
    """Heartbeat: push out the leases of the runs ``owner`` is working on, and record how many
    runs it has processed so far (when given), so a live worker's count is never stale."""
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
            if runs_processed is not None:
                worker.runs_processed = runs_processed
            session.add(worker)


def release_expired_leases(engine: Engine) -> int:
    """Make runs whose worker stopped heart-beating claimable again; returns how many."""
    now = utcnow()
    with write_session(engine) as session:
        result = session.execute(
            sa.update(Run)
            .where(col(Run.status) == RunStatus.RUNNING)
            .where(col(Run.lease_expires_at) < now)
            .where(col(Run.eval_run_id).is_(None))
            .values(status=RunStatus.READY, lease_owner=None, lease_expires_at=None)
        )
        count: int = result.rowcount  # type: ignore[attr-defined]
    if count:
        log.info("released %d runs whose lease expired", count)
    return count
