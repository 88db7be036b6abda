"""Agents, their immutable versions, and the activation history that moves the active pointer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.enums import DeploymentAction
from storage.types import JSONDoc, UTCDateTime, enum_type, utcnow


class AgentBase(SQLModel):
    name: str = Field(max_length=64, unique=True)
    description: str = Field(default="", max_length=2000)
    domain: str = Field(default="", max_length=200)


class Agent(AgentBase, table=True):
    __tablename__ = "agents"

    id: int | None = Field(default=None, primary_key=True)
    # The active pointer is deliberately not a foreign key: agents and versions would reference
    # each other, a cycle that SQLite cannot add after the fact. ``agent.versions`` enforces that
    # only a version of this agent is ever activated.
    active_version_id: int | None = Field(default=None, index=True)
    # Who may activate a version the evaluation gate refuses (with a reason, audited).
    release_override_roles: list[str] = Field(default_factory=list, sa_type=JSONDoc)
    # The emergency brake: while set, no run of the agent starts or continues (queued tasks
    # wait; a running run parks before its next call).
    paused_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    paused_by: str | None = Field(default=None, max_length=64)
    pause_reason: str = Field(default="", max_length=2000)
    # The canary release in progress (a share of new tasks goes to its candidate), if any.
    # Not a foreign key for the same reason as ``active_version_id``.
    canary_id: int | None = Field(default=None)
    # The guard a canary is held to: per-metric thresholds, minimum samples, significance level
    # (``agent.release.guard.CanaryGuard`` reads it; empty means its defaults).
    canary_guard: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AgentVersionBase(SQLModel):
    number: int
    content_hash: str = Field(max_length=64)
    policy_hash: str = Field(max_length=64)
    spec: dict[str, Any] = Field(sa_type=JSONDoc)
    source_yaml: str = Field(sa_type=sa.Text)
    note: str = Field(default="", max_length=500)
    created_by: str = Field(max_length=64)


class AgentVersion(AgentVersionBase, table=True):
    """An immutable, content-hashed bundle: planner, tools, data sources, policy, budgets."""

    __tablename__ = "agent_versions"
    __table_args__ = (
        sa.UniqueConstraint("agent_id", "number"),
        sa.UniqueConstraint("agent_id", "content_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agents.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Deployment(SQLModel, table=True):
    """One move of an agent's active pointer: who, when, from which version, to which, and why."""

    __tablename__ = "deployments"
    __table_args__ = (sa.Index("ix_deployments_agent_created", "agent_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agents.id")
    action: DeploymentAction = Field(sa_type=enum_type(DeploymentAction))
    from_version_id: int | None = Field(default=None, foreign_key="agent_versions.id")
    to_version_id: int = Field(foreign_key="agent_versions.id")
    actor: str = Field(max_length=64)
    reason: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
