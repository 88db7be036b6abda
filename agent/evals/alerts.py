"""Drift alerts: the suites whose latest scheduled evaluation of the active version failed.

A scheduled evaluation (``agent.evals.schedule``) runs a suite on its agent's active version; a
model behind an endpoint that drifts shows up as a scheduled run that fails or errors. The KPI
and Versions pages show these as an alert until a later scheduled run of the same version
passes, or another version is activated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from agent.actors import KPI_ROLES, Actor, require
from agent.platform import Platform
from storage.engine import read_session
from storage.enums import EvalRunStatus
from storage.models import Agent, AgentVersion, EvalRun, EvalSuite

SCHEDULE_TRIGGER = "schedule"
ALERTING = (EvalRunStatus.FAILED, EvalRunStatus.ERROR)


@dataclass(frozen=True)
class FailingSchedule:
    """A suite whose latest scheduled evaluation of its agent's active version did not pass.

    Attributes:
        agent: the agent's name.
        suite: the suite's name.
        version: the active version's number.
        evaluation_id: the failing evaluation run.
        status: ``failed`` (cases failed) or ``error`` (the evaluation could not finish).
        at: when that evaluation ran (finished, or started when it never finished).
        failed_cases: the cases that failed, by name.
        error: why it could not finish, when it errored.
    """

    agent: str
    suite: str
    version: int
    evaluation_id: int
    status: EvalRunStatus
    at: datetime
    failed_cases: tuple[str, ...]
    error: str | None

    def sentence(self) -> str:
        """The alert in one sentence."""
        what = (
            f"failed: {', '.join(self.failed_cases)}"
            if self.status is EvalRunStatus.FAILED and self.failed_cases
            else f"errored: {self.error}"
            if self.status is EvalRunStatus.ERROR and self.error
            else self.status.value
        )
        return (
            f"{self.agent} v{self.version}, suite {self.suite}: scheduled evaluation "
            f"{self.evaluation_id} on {self.at:%Y-%m-%d %H:%M} UTC {what}"
        )


def failing_schedules(platform: Platform, actor: Actor) -> tuple[FailingSchedule, ...]:
    """Each suite whose latest finished scheduled evaluation of its agent's active version
    failed or errored, most recent first.

    An evaluation still running does not hide the verdict of the one before it; a scheduled run
    of a version no longer active raises no alert.

    Raises:
        Forbidden: the actor is neither manager nor engineer.
    """
    require(actor, KPI_ROLES, "read the scheduled evaluations' alerts")
    latest = (
        sa.select(sa.func.max(col(EvalRun.id)))
        .where(
            col(EvalRun.suite_id) == col(EvalSuite.id),
            col(EvalRun.version_id) == col(Agent.active_version_id),
            col(EvalRun.trigger) == SCHEDULE_TRIGGER,
            col(EvalRun.status) != EvalRunStatus.RUNNING,
        )
        .correlate(EvalSuite, Agent)
        .scalar_subquery()
    )
    query = (
        sa.select(EvalRun, col(Agent.name), col(EvalSuite.name), col(AgentVersion.number))
        .select_from(EvalSuite)
        .join(Agent, col(Agent.id) == col(EvalSuite.agent_id))
        .join(EvalRun, col(EvalRun.id) == latest)
        .join(AgentVersion, col(AgentVersion.id) == col(EvalRun.version_id))
        .where(col(EvalRun.status).in_(ALERTING))
        .order_by(col(EvalRun.created_at).desc(), col(EvalRun.id).desc())
    )
    with read_session(platform.engine) as session:
        rows = session.execute(query).all()
        return tuple(
            FailingSchedule(
                agent=agent,
                suite=suite,
                version=number,
                evaluation_id=run.id or 0,
                status=EvalRunStatus(run.status),
                at=run.finished_at or run.created_at,
                failed_cases=tuple(str(c) for c in run.summary.get("failed_cases", ())),
                error=run.error,
            )
            for run, agent, suite, number in rows
        )
