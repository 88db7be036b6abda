"""Operational state shared by all workers: their heartbeats, each tool's circuit breaker and
the calls counted against rate limits."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.enums import CircuitState, ErrorClass
from storage.types import UTCDateTime, enum_type, utcnow


class Worker(SQLModel, table=True):
    __tablename__ = "workers"

    id: str = Field(primary_key=True, max_length=128)
    hostname: str = Field(max_length=255)
    pid: int
    concurrency: int = Field(default=1)
    embedded: bool = Field(default=False)
    runs_processed: int = Field(default=0)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CircuitBreaker(SQLModel, table=True):
    """A tool's breaker, stored so every worker fails fast on the same open circuit."""

    __tablename__ = "circuit_breakers"

    tool: str = Field(primary_key=True, max_length=128)
    state: CircuitState = Field(default=CircuitState.CLOSED, sa_type=enum_type(CircuitState))
    consecutive_failures: int = Field(default=0)
    opened_count: int = Field(default=0)
    opened_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error_class: ErrorClass | None = Field(default=None, sa_type=enum_type(ErrorClass))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # When the half-open breaker let its one trial call through; None while no trial is out.
    # A trial that has not reported back after the breaker's ``reset_after_s`` is presumed
    # lost (its worker died or lost the run) and the slot is free again.
    trial_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RateLimitEntry(SQLModel, table=True):
    """Calls counted against one rate limit, kept until the limit's period has passed.

    ``key`` names the limit and what it counts (agent, tool, amount and period, as the
    ``limits`` library builds it); ``cost`` is how many calls the entry stands for. The live
    entries of a key are those whose ``expires_at`` is still ahead.
    """

    __tablename__ = "rate_limit_entries"
    __table_args__ = (sa.Index("ix_rate_limit_entries_window", "key", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255)
    cost: int = Field(default=1)
    expires_at: datetime = Field(sa_type=UTCDateTime)
