"""The review queue: open reviews most urgent first, their counts and filter choices, and one
review with everything an operator needs to decide it.

The queue is served by the ``(status, sla_due_at)`` index; filters on names become conditions on
the review's own indexed ids, and every list stops at a LIMIT. It is production's queue: the
reviews of an evaluation's runs are answered by its scripted reviewer and never listed, counted or
offered as a filter choice here (one review still opens by id, as its run does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from storage.enums import ReviewKind, ReviewStatus
from storage.models import Agent, AgentVersion, Review, Run, Task
from storage.queries.production import of_production_run
from storage.queries.records import (
    DecisionRecord,
    ReviewRecord,
    TraceStep,
    agent_id_of,
    decision_records,
    review_record,
    trace_steps,
    version_ids_of,
)


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
    approvals_required: int = 1
    approved_by: tuple[str, ...] = ()
    assigned_to: str | None = None
    assigned_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QueueFilter:
    """Which open reviews to list: each field left None does not filter."""

    agent: str | None = None
    version: int | None = None
    kind: str | None = None
    rule_id: str | None = None
    tool: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE conditions on open reviews this filter stands for (production's only)."""
        conditions: list[ColumnElement[bool]] = [of_production_run(Review.run_id)]
        if self.agent:
            conditions.append(col(Review.agent_id) == agent_id_of(self.agent))
        if self.version is not None:
            conditions.append(col(Review.version_id).in_(version_ids_of(self.version, self.agent)))
        if self.kind:
            conditions.append(col(Review.kind) == ReviewKind(self.kind))
        if self.rule_id:
            conditions.append(col(Review.rule_id) == self.rule_id)
        if self.tool:
            conditions.append(col(Review.tool) == self.tool)
        return conditions


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
    offset: int = 0,
) -> list[QueueItem]:
    """Open reviews (pending and blocked), most urgent first: SLA due, then highest risk, then
    id (so that pages of the queue neither repeat nor skip a review)."""
    query = (
        select(Review, Agent.name, AgentVersion.number)
        .join(Agent, col(Agent.id) == col(Review.agent_id))
        .join(AgentVersion, col(AgentVersion.id) == col(Review.version_id))
        .where(*QueueFilter(agent, version, kind, rule_id, tool).conditions())
        .order_by(
            col(Review.sla_due_at).asc().nulls_last(), col(Review.risk).desc(), col(Review.id)
        )
        .limit(limit)
        .offset(offset)
    )
    if not include_decided:
        query = query.where(col(Review.status).in_(ReviewStatus.open_statuses()))
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
            approvals_required=r.approvals_required,
            approved_by=tuple(r.approved_by or ()),
            assigned_to=r.assigned_to,
            assigned_at=r.assigned_at,
        )
        for r, name, number in session.exec(query).all()
    ]


def queue_counts(flt: QueueFilter, *, session: Session, now: datetime) -> tuple[int, int]:
    """How many open reviews ``flt`` matches, and how many of them are past their SLA."""
    overdue = sa.case((col(Review.sla_due_at) < now, 1), else_=0)
    row = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(overdue), 0))
        .select_from(Review)
        .where(col(Review.status).in_(ReviewStatus.open_statuses()))
        .where(*flt.conditions())
    ).one()
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class QueueFacets:
    """The values the open reviews take, to offer as filter choices."""

    agents: tuple[str, ...]
    versions: tuple[int, ...]
    kinds: tuple[str, ...]
    rules: tuple[str, ...]
    tools: tuple[str, ...]


def queue_facets(*, session: Session) -> QueueFacets:
    """Distinct agents, versions, kinds, rules and tools among production's open reviews (one
    grouped scan)."""
    rows = session.execute(
        sa.select(
            col(Review.agent_id),
            col(Review.version_id),
            col(Review.kind),
            col(Review.rule_id),
            col(Review.tool),
        )
        .where(col(Review.status).in_(ReviewStatus.open_statuses()))
        .where(of_production_run(Review.run_id))
        .group_by(
            col(Review.agent_id),
            col(Review.version_id),
            col(Review.kind),
            col(Review.rule_id),
            col(Review.tool),
        )
    ).all()
    version_ids = {row.version_id for row in rows}
    names: dict[int, tuple[str, int]] = {}
    if version_ids:
        names = {
            vid: (name, number)
            for vid, name, number in session.execute(
                sa.select(col(AgentVersion.id), col(Agent.name), col(AgentVersion.number))
                .join(Agent, col(Agent.id) == col(AgentVersion.agent_id))
                .where(col(AgentVersion.id).in_(version_ids))
            ).all()
        }
    return QueueFacets(
        agents=tuple(sorted({names[r.version_id][0] for r in rows})),
        versions=tuple(sorted({names[r.version_id][1] for r in rows})),
        kinds=tuple(sorted({ReviewKind(r.kind).value for r in rows})),
        rules=tuple(sorted({r.rule_id for r in rows if r.rule_id})),
        tools=tuple(sorted({r.tool for r in rows if r.tool})),
    )


@dataclass(frozen=True)
class ReviewDetail:
    """One review with what an operator needs to decide it: task, trace so far, decisions."""

    review: ReviewRecord
    task_id: int
    task_input: dict[str, Any]
    rule: dict[str, Any] | None
    steps: tuple[TraceStep, ...]
    decisions: tuple[DecisionRecord, ...]
    submitted_by: str | None = None


def review_detail(
    review_id: int, *, session: Session, step_limit: int = 500
) -> ReviewDetail | None:
    """A review, its task, the rule as the pinned version states it, and the trace before it.

    Args:
        review_id: the review.
        session: the caller's session.
        step_limit: at most this many steps of the run, the first ones.

    Returns:
        The detail, or None when there is no such review.
    """
    review = session.get(Review, review_id)
    if review is None:
        return None
    run = session.get(Run, review.run_id)
    version = session.get(AgentVersion, review.version_id)
    agent = session.get(Agent, review.agent_id)
    task = session.get(Task, run.task_id) if run else None
    if version is None or agent is None or run is None:  # pragma: no cover - foreign keys
        return None
    rules = version.spec.get("policy", {}).get("rules", [])
    rule = next((dict(r) for r in rules if r.get("id") == review.rule_id), None)
    record = review_record(review, (agent.name, version.number))
    return ReviewDetail(
        review=record,
        task_id=run.task_id,
        task_input=dict(task.input) if task else {},
        rule=rule,
        # The steps the run had taken when it asked: everything started before the review.
        steps=tuple(
            trace_steps(session, review.run_id, limit=step_limit, before=review.created_at)
        ),
        decisions=decision_records(session, [record.id]),
        submitted_by=task.submitted_by if task else None,
    )
