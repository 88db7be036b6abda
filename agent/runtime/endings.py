"""How a run stops: it finishes with an outcome, or it parks until people decide its reviews."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from agent.runtime.records import redact
from agent.runtime.session import RunSession
from storage.enums import ErrorClass, ReviewStatus, RunStatus, StepStatus, TaskStatus
from storage.tables import REVIEWS, RUNS, STEPS, set_task_status
from storage.types import utcnow

_TASK_STATUS = {
    RunStatus.SUCCEEDED: TaskStatus.SUCCEEDED,
    RunStatus.FAILED: TaskStatus.FAILED,
    RunStatus.ESCALATED: TaskStatus.ESCALATED,
    RunStatus.CANCELLED: TaskStatus.CANCELLED,
    RunStatus.WAITING_REVIEW: TaskStatus.WAITING_REVIEW,
}

# Built once (see agent.runtime.session); each takes its SET columns from the parameters.
_RUN_STATUS = sa.update(RUNS).where(RUNS.c.id == sa.bindparam("run_id"))
_ROOT_CLOSE = sa.update(STEPS).where(STEPS.c.id == sa.bindparam("step_id"))
_OPEN_REVIEW = (
    sa.select(REVIEWS.c.id)
    .where(REVIEWS.c.run_id == sa.bindparam("run_id"))
    .where(REVIEWS.c.status.in_(ReviewStatus.open_statuses()))
    .limit(1)
)


def has_open_review(connection: sa.Connection, run_id: int) -> bool:
    """Whether a review of the run still waits for a person."""
    return connection.execute(_OPEN_REVIEW, {"run_id": run_id}).first() is not None


def finish(
    run: RunSession,
    status: RunStatus,
    error_class: ErrorClass | None = None,
    message: str | None = None,
    *,
    output: dict[str, Any] | None = None,
) -> RunStatus:
    """End the run with ``status``: close its root step, settle its task, release the lease."""
    now = utcnow()
    state = run.state
    step_status = StepStatus.OK if status is RunStatus.SUCCEEDED else StepStatus.ERROR

    def close(connection: sa.Connection) -> None:
        set_task_status(connection, state.task_id, _TASK_STATUS[status])
        if state.root_step_id is not None:  # read now: the same commit may insert the root
            connection.execute(
                _ROOT_CLOSE,
                {
                    "step_id": state.root_step_id,
                    "status": step_status,
                    "error_class": error_class,
                    "ended_at": now,
                    "duration_ms": state.elapsed_agent_ms(),
                    "output": {"status": status.value, "message": message},
                },
            )

    run.commit(
        close,
        status=status,
        error_class=error_class,
        error_message=message[:2000] if message else None,
        output=redact(output) if output is not None else None,
        finished_at=now,
        lease_owner=None,
        lease_expires_at=None,
    )
    return status


def park(run: RunSession) -> RunStatus:
    """Wait for people: release the lease; the run is claimable again once they decide."""
    parked = RunStatus.WAITING_REVIEW
    state = run.state

    def wait_or_resume(connection: sa.Connection) -> None:
        # The fenced update locked the run row. A decision that committed before it saw the run
        # still running and could not resume it; if every review is decided by now, the run is
        # ready again instead of waiting for nobody.
        nonlocal parked
        if has_open_review(connection, state.run_id):
            set_task_status(connection, state.task_id, TaskStatus.WAITING_REVIEW)
            return
        parked = RunStatus.READY
        connection.execute(_RUN_STATUS, {"run_id": state.run_id, "status": parked})

    run.commit(
        wait_or_resume, status=RunStatus.WAITING_REVIEW, lease_owner=None, lease_expires_at=None
    )
    return parked
