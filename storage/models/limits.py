"""Reservations against policy counters: what a counted call took from a limit, and when."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class LimitReservation(SQLModel, table=True):
    """One counted call's share of a policy counter (``policy.counters`` of a version).

    Written in the same transaction as the decision that allowed the call and the call's ledger
    row, under a lock on ``counter_key``, so the next decision on that key counts it. Released
    (``released_at``) when the call is known not to have taken effect.
    """

    __tablename__ = "limit_reservations"
    __table_args__ = (sa.Index("ix_limit_reservations_window", "counter_key", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    counter_key: str = Field(max_length=400)
    counter: str = Field(max_length=64)
    agent_id: int = Field(foreign_key="agents.id")
    run_id: int = Field(foreign_key="runs.id")
    call_id: str = Field(max_length=64)
    idempotency_key: str = Field(max_length=128, index=True)
    amount: float = Field(default=1.0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
