"""The notification outbox: a message per event and channel, delivered by the worker.

A row is written once per ``dedupe_key`` (the event and the channel), so the worker that finds an
event again (every few seconds) adds nothing; delivery retries a row with backoff until it is
sent or gives up, and what failed stays visible on the System status page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import JSONDoc, UTCDateTime, utcnow


class Notification(SQLModel, table=True):
    """One message for one channel. ``status``: pending, sent or failed (gave up)."""

    __tablename__ = "notifications"
    __table_args__ = (sa.Index("ix_notifications_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=255, unique=True, index=True)
    event: str = Field(max_length=64)
    channel: str = Field(max_length=64, index=True)
    subject: str = Field(max_length=255)
    body: str = Field(max_length=4000)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class NotifySettings(SQLModel, table=True):
    """The notification channels and routes an admin saved in the console (one row, id 1);
    ``STEWARD_NOTIFY_FILE``, when set, takes precedence over it."""

    __tablename__ = "notify_settings"

    id: int | None = Field(default=None, primary_key=True)
    source_yaml: str = Field(sa_type=sa.Text)
    updated_by: str = Field(max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
