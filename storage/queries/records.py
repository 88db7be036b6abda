"""Read models shared by the run view and the review pane: trace steps, reviews, decisions.

Built from live rows inside the caller's session and handed out as frozen data, so nothing that
leaves the storage layer depends on an open session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.enums import DecisionKind, ErrorClass, ReviewKind, ReviewStatus, StepKind, StepStatus
from storage.models import Agent, AgentVersion, Review, ReviewDecision, Step


def agent_id_of(name: str) -> sa.ScalarSelect[Any]:
    """The id of the agent called ``name``, as a subquery (so filters stay on indexed ids)."""
    return sa.select(col(Agent.id)).where(col(Agent.name) == name).scalar_subquery()


def version_ids_of(number: int, agent: str | None) -> sa.Select[Any]:
    """The ids of the agent versions numbered ``number`` (of ``agent``, or of every agent)."""
    versions = sa.select(col(AgentVersion.id)).where(col(AgentVersion.number) == number)
    if agent:
        versions = versions.where(col(AgentVersion.agent_id) == agent_id_of(agent))
    return versions


@dataclass(frozen=True)
class TraceStep:
    """One step of a trace: reasoning, proposal, guardrail, tool attempt, human decision."""

    seq: int
    kind: StepKind
    name: str
    call_id: str | None
    status: StepStatus
    error_class: ErrorClass | None
    started_at: datetime
    duration_ms: float | None
    input: dict[str, Any] | None
    output: dict[str, Any] | None
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReviewRecord:
    """A review with the names an operator reads (agent, version number) resolved."""

    id: int
    run_id: int
    agent: str
    version: int
    version_id: int
    kind: ReviewKind
    status: ReviewStatus
    call_id: str | None
    tool: str | None
    args: dict[str, Any] | None
    rule_id: str | None
    reason: str
    risk: int
    tier: int
    override_roles: tuple[str, ...]
    sla_due_at: datetime | None
    row_version: int
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime
    approvals_required: int = 1
    approved_by: tuple[str, ...] = ()
    assigned_to: str | None = None
    assigned_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """Pending or blocked: still waiting for a decision."""
        return self.status.is_open


@dataclass(frozen=True)
class DecisionRecord:
    """What a person (or the SLA clock) decided on a review, and why."""

    review_id: int
    decision: DecisionKind
    actor: str
    reason: str
    args: dict[str, Any] | None
    created_at: datetime


def trace_steps(
    session: Session, run_id: int, *, limit: int, before: datetime | None = None
) -> list[TraceStep]:
    """The run's first ``limit`` steps in order, only those started before ``before`` if given."""
    query = select(Step).where(col(Step.run_id) == run_id)
    if before is not None:
        query = query.where(col(Step.started_at) < before)
    return [
        TraceStep(
            seq=s.seq,
            kind=s.kind,
            name=s.name,
            call_id=s.call_id,
            status=s.status,
            error_class=s.error_class,
            started_at=s.started_at,
            duration_ms=s.duration_ms,
            input=s.input,
            output=s.output,
            attributes=dict(s.attributes or {}),
        )
        for s in session.exec(query.order_by(col(Step.seq)).limit(limit)).all()
    ]


def decision_records(session: Session, review_ids: list[int]) -> tuple[DecisionRecord, ...]:
    """The decisions on these reviews, oldest first."""
    if not review_ids:
        return ()
    rows = session.exec(
        select(ReviewDecision)
        .where(col(ReviewDecision.review_id).in_(review_ids))
        .order_by(col(ReviewDecision.id))
    ).all()
    return tuple(
        DecisionRecord(
            review_id=d.review_id,
            decision=d.decision,
            actor=d.actor,
            reason=d.reason,
            args=d.args,
            created_at=d.created_at,
        )
        for d in rows
    )


def review_record(review: Review, names: tuple[str, int]) -> ReviewRecord:
    """The read model of ``review``; ``names`` is its (agent name, version number)."""
    return ReviewRecord(
        id=review.id or 0,
        run_id=review.run_id,
        agent=names[0],
        version=names[1],
        version_id=review.version_id,
        kind=review.kind,
        status=review.status,
        call_id=review.call_id,
        tool=review.tool,
        args=review.args,
        rule_id=review.rule_id,
        reason=review.reason,
        risk=review.risk,
        tier=review.tier,
        override_roles=tuple(review.override_roles or ()),
        sla_due_at=review.sla_due_at,
        row_version=review.row_version,
        decided_by=review.decided_by,
        decided_at=review.decided_at,
        created_at=review.created_at,
        approvals_required=review.approvals_required,
        approved_by=tuple(review.approved_by or ()),
        assigned_to=review.assigned_to,
        assigned_at=review.assigned_at,
    )
