"""The observations a canary release is judged on: one row per run it routed, one per review
those runs raised.

A canary's population is its runs (``runs.canary_id``), either arm; the run's version says
which. The run rows carry what the guard compares (status, cost, agent time, denials) and three
flags read with ``EXISTS`` (an escalation raised, a tool call that failed or whose outcome is
unknown); the review rows carry how each decided review ended. A canary routes a few thousand
runs at most before someone promotes or aborts it, so the rows are fetched and the statistics
computed in Python (``agent.release.guard``), where scipy's tests live.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col

from storage.enums import ReviewKind, ReviewStatus, RunStatus, ToolCallStatus
from storage.models import Review, Run, ToolCall

_TOOL_ERRORS = (ToolCallStatus.FAILED, ToolCallStatus.OUTCOME_UNKNOWN)
_DECIDED = (
    ReviewStatus.APPROVED,
    ReviewStatus.EDITED,
    ReviewStatus.REJECTED,
    ReviewStatus.OVERRIDDEN,
    ReviewStatus.EXPIRED,
)


@dataclass(frozen=True)
class RunObservation:
    """One run of a canary's population, as the guard sees it."""

    run_id: int
    version_id: int
    status: RunStatus
    escalated: bool
    denied: bool
    tool_error: bool
    cost_usd: float
    agent_time_ms: float

    @property
    def settled(self) -> bool:
        """Whether governance has had its say: the run ended, or it waits for (or was resumed
        after) a person. A run still on its first pass is not yet an observation."""
        return self.status.is_terminal or self.escalated or self.status is RunStatus.WAITING_REVIEW


@dataclass(frozen=True)
class ReviewObservation:
    """One decided review raised by a run of a canary's population."""

    review_id: int
    version_id: int
    status: ReviewStatus


def canary_runs(canary_id: int, *, session: Session) -> list[RunObservation]:
    """Every run the canary routed, either arm, oldest first."""
    escalated = (
        sa.select(col(Review.id))
        .where(col(Review.run_id) == col(Run.id))
        .where(col(Review.kind) == ReviewKind.ESCALATION)
        .exists()
    )
    tool_error = (
        sa.select(col(ToolCall.id))
        .where(col(ToolCall.run_id) == col(Run.id))
        .where(col(ToolCall.status).in_(_TOOL_ERRORS))
        .exists()
    )
    rows = session.execute(
        sa.select(
            col(Run.id),
            col(Run.version_id),
            col(Run.status),
            escalated.label("escalated"),
            col(Run.denial_count),
            tool_error.label("tool_error"),
            col(Run.cost_usd),
            col(Run.agent_time_ms),
        )
        .where(col(Run.canary_id) == canary_id)
        .order_by(col(Run.id))
    ).all()
    return [
        RunObservation(
            run_id=row[0],
            version_id=row[1],
            status=RunStatus(row[2]),
            escalated=bool(row[3]),
            denied=row[4] > 0,
            tool_error=bool(row[5]),
            cost_usd=float(row[6] or 0.0),
            agent_time_ms=float(row[7] or 0.0),
        )
        for row in rows
    ]


def canary_reviews(canary_id: int, *, session: Session) -> list[ReviewObservation]:
    """Every decided review the canary's runs raised, oldest first."""
    rows = session.execute(
        sa.select(col(Review.id), col(Review.version_id), col(Review.status))
        .join(Run, col(Run.id) == col(Review.run_id))
        .where(col(Run.canary_id) == canary_id)
        .where(col(Review.status).in_(_DECIDED))
        .order_by(col(Review.id))
    ).all()
    return [
        ReviewObservation(review_id=row[0], version_id=row[1], status=ReviewStatus(row[2]))
        for row in rows
    ]
