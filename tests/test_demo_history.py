"""The demo's thirty days of history: real template runs copied across the month, a version 2
that escalated more and was rolled back, a fraud-service outage that opened a breaker, people's
decisions at human delays (each an audit event), and the systems of record left as seeded so
the sample tasks behave as documented."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from agent.actors import Actor
from agent.demo.history import OUTAGE_DAY, V2_FROM_DAY, V2_UNTIL_DAY
from agent.demo.seed import seed_demo
from agent.reads.kpis import KpiFilter, kpi_comparison, kpi_report
from storage.audit import verify_chain
from storage.engine import read_session
from storage.enums import DeploymentAction, RunStatus, StepKind
from storage.models import (
    Agent,
    AuditEvent,
    CircuitBreaker,
    Deployment,
    Review,
    ReviewDecision,
    Run,
    Step,
    SupportRefund,
    Task,
    ToolCall,
)
from storage.types import utcnow
from tests.support.runtime import drive, platform_for

MONA = Actor.of("mona", ["manager"])


def test_a_month_of_history_tells_its_story(migrated: Engine) -> None:
    platform = platform_for(migrated)
    before = utcnow()
    report = seed_demo(platform, with_tasks=True, with_evaluations=False, with_history=True)
    assert report.history > 400
    start = (before - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)

    with read_session(migrated) as session:
        created = session.exec(select(Run.created_at).where(col(Run.created_at) < before)).all()
        days = {moment.date() for moment in created}
        assert len(created) == report.history
        assert min(created) >= start and max(created) < before
        assert len(days) == 30  # every day of the month has traffic
        # The sample tasks the seed queued afterwards wait for today's worker.
        queued = session.exec(
            select(func.count()).select_from(Task).where(col(Task.source) == "demo")
        ).one()
        assert queued == report.tasks

        support = session.exec(select(Agent).where(col(Agent.name) == "support")).one()
        moves = session.exec(
            select(Deployment)
            .where(col(Deployment.agent_id) == support.id)
            .order_by(col(Deployment.id))
        ).all()
        assert [m.action for m in moves] == [
            DeploymentAction.ACTIVATE,
            DeploymentAction.ACTIVATE,
            DeploymentAction.ROLLBACK,
        ]
        assert moves[1].created_at.date() == (start + timedelta(days=V2_FROM_DAY)).date()
        assert moves[2].created_at.date() == (start + timedelta(days=V2_UNTIL_DAY)).date()
        assert moves[0].created_at < start

        breaker = session.get(CircuitBreaker, "check_fraud_score")
        assert breaker is not None and breaker.opened_count >= 1
        assert breaker.opened_at is not None
        assert breaker.opened_at.date() == (start + timedelta(days=OUTAGE_DAY)).date()
        outage = session.exec(
            select(func.count())
            .select_from(ToolCall)
            .where(col(ToolCall.tool) == "check_fraud_score")
            .where(col(ToolCall.status) == "failed")
            .where(func.date(ToolCall.created_at) == (start + timedelta(days=OUTAGE_DAY)).date())
        ).one()
        assert outage >= 8

        # People decided, minutes to an hour after the review was raised.
        decided = session.exec(
            select(Review).where(
                col(Review.decided_at).is_not(None), col(Review.created_at) < before
            )
        ).all()
        waits = sorted(
            (r.decided_at - r.created_at).total_seconds() for r in decided if r.decided_at
        )
        assert len(waits) > 40
        assert waits[len(waits) // 2] > 120
        people = session.exec(
            select(func.count())
            .select_from(ReviewDecision)
            .where(col(ReviewDecision.actor) != "system")
        ).one()
        audited = session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(col(AuditEvent.action).startswith("review."))
        ).one()
        assert audited >= people
        # A person's wait is the human-approval step's duration, as in a run that waited.
        approvals = session.exec(
            select(Step).where(col(Step.kind) == StepKind.HUMAN_APPROVAL)
        ).all()
        assert approvals
        for step in approvals:
            assert step.ended_at is not None and step.duration_ms is not None
            spanned = (step.ended_at - step.started_at).total_seconds() * 1000
            assert abs(step.duration_ms - spanned) < 1000, step.id
        assert verify_chain(session).ok
        # Running the templates paid refunds; the records are back to their seed state.
        assert session.exec(select(func.count()).select_from(SupportRefund)).one() == 0

    # Version 2's month escalated more than version 1's.
    compared = kpi_comparison(platform, MONA, "support", 1, 2).set_index("metric")
    escalation = compared.loc["escalation rate"]
    assert escalation["v2"] > escalation["v1"]
    # The KPI page's default range has figures in every section.
    week = kpi_report(platform, MONA, KpiFilter(since=before - timedelta(days=7)))
    assert week.runs["total"] > 50 and week.reviews["total"] > 0
    assert not week.tools.empty and not week.policy.empty and len(week.trend) >= 7

    # Today's sample tasks still behave as documented (no refund or limit used up by the past).
    drive(migrated, max_claims=500)
    with read_session(migrated) as session:
        run = session.exec(
            select(Run)
            .join(Task, col(Task.id) == col(Run.task_id))
            .where(col(Task.source) == "demo")
            .where(sa.cast(col(Task.input), sa.String).contains('"O-5001"'))
        ).first()
    assert run is not None and run.status is RunStatus.SUCCEEDED
