"""What a release is checked with before and while it goes live: saved policy replays and
canary releases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.enums import CanaryStatus
from storage.types import JSONDoc, UTCDateTime, enum_type, utcnow


class PolicyReplay(SQLModel, table=True):
    """One replay of a candidate policy on an agent's recorded decisions, with its report;
    attached to the candidate version when the candidate was a stored one."""

    __tablename__ = "policy_replays"
    __table_args__ = (sa.Index("ix_policy_replays_agent_created", "agent_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agents.id")
    version_id: int | None = Field(default=None, foreign_key="agent_versions.id", index=True)
    candidate: str = Field(max_length=200)
    candidate_policy_hash: str = Field(max_length=64)
    since: datetime = Field(sa_type=UTCDateTime)
    until: datetime = Field(sa_type=UTCDateTime)
    flipped: int = Field(default=0)
    report: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Canary(SQLModel, table=True):
    """A canary release: ``share`` percent of the agent's new tasks run on the candidate while
    the rest stay on the baseline (the version active when it started), until a person
    promotes or aborts it or its guard rolls it back. ``verdict`` keeps the comparison it ended
    on; ``guard`` the thresholds it was held to."""

    __tablename__ = "canaries"
    __table_args__ = (sa.Index("ix_canaries_agent_started", "agent_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agents.id")
    candidate_version_id: int = Field(foreign_key="agent_versions.id")
    baseline_version_id: int = Field(foreign_key="agent_versions.id")
    share: int
    status: CanaryStatus = Field(default=CanaryStatus.RUNNING, sa_type=enum_type(CanaryStatus))
    reason: str = Field(max_length=2000)
    started_by: str = Field(max_length=64)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    guard: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    gate: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_by: str | None = Field(default=None, max_length=64)
    end_reason: str = Field(default="", max_length=2000)
    verdict: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
