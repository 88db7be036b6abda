"""What a release is checked with before and while it goes live: saved policy replays."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import JSONDoc, UTCDateTime, utcnow


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
