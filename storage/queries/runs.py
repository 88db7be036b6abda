"""Run lists, a run's full trace, and the review queue, as read models for CLI and console."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.enums import ErrorClass, ReviewStatus, RunStatus
from storage.models import Agent, AgentVersion, Review, ReviewDecision, Run, Step, Task, ToolCall


@dataclass(frozen=True)
class RunSummary:
    id: int
    task_id: int
    agent: str
    version: int
    status: str
    error_class: str | None
    steps: int
    agent_time_ms: float
    created_at: datetime
    finished_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_runs(
    *,
    session: Session,
    agent: str | None = None,
    version: int | None = None,
    status: RunStatus | None = None,
    error_class: ErrorClass | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
) -> list[RunSummary]:
    """Newest runs first, filtered; served by the (agent, version, status, created) index."""
    query = (
        select(Run, Agent.name, AgentVersion.number)
        .join(Agent, col(Agent.id) == col(Run.agent_id))
        .join(AgentVersion, col(AgentVersion.id) == col(Run.version_id))
        .order_by(col(Run.created_at).desc(), col(Run.id).desc())
        .limit(limit)
    )
    if agent:
        query = query.where(col(Agent.name) == agent)
    if version is not None:
        query = query.where(col(AgentVersion.number) == version)
    if status is not None:
        query = query.where(col(Run.status) == status)
    if error_class is not None:
        query = query.where(col(Run.error_class) == error_class)
    if since is not None:
        query = query.where(col(Run.created_at) >= since)
    if until is not None:
        query = query.where(col(Run.created_at) < until)
    return [
        RunSummary(
            id=run.id or 0,
            task_id=run.task_id,
            agent=name,
            version=number,
            status=run.status.value,
            error_class=run.error_class.value if run.error_class else None,
            steps=run.step_count,
            agent_time_ms=round(run.agent_time_ms, 1),
            created_at=run.created_at,
            finished_at=run.finished_at,
        )
        for run, name, number in session.exec(query).all()
    ]


def run_detail(run_id: int, *, session: Session) -> dict[str, Any] | None:
    """Everything about one run: summary, task, version, steps, ledger, reviews and decisions."""
    run = session.get(Run, run_id)
    if run is None:
        return None
    task = session.get(Task, run.task_id)
    version = session.get(AgentVersion, run.version_id)
    agent = session.get(Agent, run.agent_id)
    steps = session.exec(
        select(Step).where(col(Step.run_id) == run_id).order_by(col(Step.seq))
    ).all()
    ledger = session.exec(
        select(ToolCall).where(col(ToolCall.run_id) == run_id).order_by(col(ToolCall.id))
    ).all()
    reviews = session.exec(
        select(Review).where(col(Review.run_id) == run_id).order_by(col(Review.id))
    ).all()
    review_ids = [r.id for r in reviews]
    decisions = (
        session.exec(
            select(ReviewDecision)
            .where(col(ReviewDecision.review_id).in_(review_ids))
            .order_by(col(ReviewDecision.id))
        ).all()
        if review_ids
        else []
    )
    return {
        "run": run.model_dump(mode="json"),
        "agent": agent.name if agent else None,
        "task": task.model_dump(mode="json") if task else None,
        "version": {
            "id": version.id,
            "number": version.number,
            "content_hash": version.content_hash,
            "policy_hash": version.policy_hash,
            "spec": version.spec,
        }
        if version
        else None,
        "steps": [s.model_dump(mode="json") for s in steps],
        "tool_calls": [t.model_dump(mode="json") for t in ledger],
        "reviews": [r.model_dump(mode="json") for r in reviews],
        "decisions": [d.model_dump(mode="json") for d in decisions],
    }


@dataclass(frozen=True)
class QueueItem:
    id: int
    run_id: int
    agent: str
    version: int
    kind: str
    status: str
    tool: str | None
    rule_id: str | None
    reason: str
    risk: int
    tier: int
    row_version: int
    sla_due_at: datetime | None
    created_at: datetime
    args: dict[str, Any] | None
    override_roles: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def review_queue(
    *,
    session: Session,
    agent: str | None = None,
    version: int | None = None,
    kind: str | None = None,
    rule_id: str | None = None,
    tool: str | None = None,
    include_decided: bool = False,
    limit: int = 200,
) -> list[QueueItem]:
    """Open reviews (pending and blocked), most urgent first: SLA due, then highest risk."""
    query = (
        select(Review, Agent.name, AgentVersion.number)
        .join(Agent, col(Agent.id) == col(Review.agent_id))
        .join(AgentVersion, col(AgentVersion.id) == col(Review.version_id))
        .order_by(col(Review.sla_due_at).asc(), col(Review.risk).desc(), col(Review.id))
        .limit(limit)
    )
    if not include_decided:
        query = query.where(col(Review.status).in_([ReviewStatus.PENDING, ReviewStatus.BLOCKED]))
    for column, value in (
        (Agent.name, agent),
        (col(Review.kind), kind),
        (col(Review.rule_id), rule_id),
        (col(Review.tool), tool),
    ):
        if value:
            query = query.where(col(column) == value)
    if version is not None:
        query = query.where(col(AgentVersion.number) == version)
    return [
        QueueItem(
            id=r.id or 0,
            run_id=r.run_id,
            agent=name,
            version=number,
            kind=r.kind.value,
            status=r.status.value,
            tool=r.tool,
            rule_id=r.rule_id,
            reason=r.reason,
            risk=r.risk,
            tier=r.tier,
            row_version=r.row_version,
            sla_due_at=r.sla_due_at,
            created_at=r.created_at,
            args=r.args,
            override_roles=list(r.override_roles),
        )
        for r, name, number in session.exec(query).all()
    ]


def count_by_status(*, session: Session) -> dict[str, int]:
    rows = session.execute(
        sa.select(col(Run.status), sa.func.count()).group_by(col(Run.status))
    ).all()
    return {status.value if hasattr(status, "value") else str(status): n for status, n in rows}
