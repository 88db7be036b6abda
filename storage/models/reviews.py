"""Reviews: the human side of governance, each bound to the exact call it would authorize."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.enums import DecisionKind, ReviewKind, ReviewStatus
from storage.types import JSONDoc, UTCDateTime, enum_type, utcnow


class Review(SQLModel, table=True):
    """An escalated, blocked or unverifiable action waiting for (or decided by) a person.

    ``row_version`` makes every decision a compare-and-set: a decision only applies if the row
    still carries the version the decider saw.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        sa.Index("ix_reviews_queue", "status", "sla_due_at"),
        sa.Index("ix_reviews_run", "run_id", "created_at"),
        sa.Index("ix_reviews_ready", "status", "applied_at"),
        sa.Index("ix_reviews_created", "created_at"),  # KPIs over a time range
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    agent_id: int = Field(foreign_key="agents.id", index=True)
    version_id: int = Field(foreign_key="agent_versions.id")
    parent_id: int | None = Field(default=None, foreign_key="reviews.id")
    step_id: int | None = Field(default=None, foreign_key="steps.id")
    kind: ReviewKind = Field(sa_type=enum_type(ReviewKind))
    status: ReviewStatus = Field(sa_type=enum_type(ReviewStatus))
    call_id: str | None = Field(default=None, max_length=64)
    tool: str | None = Field(default=None, max_length=128)
    args: dict[str, Any] | None = Field(default=None, sa_type=JSONDoc)
    args_hash: str | None = Field(default=None, max_length=64)
    policy_hash: str = Field(max_length=64)
    rule_id: str | None = Field(default=None, max_length=128)
    reason: str = Field(default="", max_length=2000)
    risk: int = Field(default=0)
    tier: int = Field(default=1)
    override_roles: list[str] = Field(default_factory=list, sa_type=JSONDoc)
    # Four-eyes: how many distinct people must approve the call (the rule's ``approvals``), and
    # who approved its current arguments so far (an edit restarts the list with the editor).
    approvals_required: int = Field(default=1)
    approved_by: list[str] = Field(default_factory=list, sa_type=JSONDoc)
    # Who took the review to work on it, and since when; after the queue's hold timeout it
    # is back in the pool (read as unassigned) whatever these say.
    assigned_to: str | None = Field(default=None, max_length=64)
    assigned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sla_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    row_version: int = Field(default=1)
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    applied_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ReviewDecision(SQLModel, table=True):
    """What a person (or the SLA clock) decided on a review, with the arguments it bound."""

    __tablename__ = "review_decisions"

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="reviews.id", index=True)
    decision: DecisionKind = Field(sa_type=enum_type(DecisionKind))
    actor: str = Field(max_length=64)
    reason: str = Field(default="", max_length=2000)
    args: dict[str, Any] | None = Field(default=None, sa_type=JSONDoc)
    args_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
