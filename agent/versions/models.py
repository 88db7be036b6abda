"""Read models of agents, versions and deployments: plain frozen data, never live rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.actors import Actor
from storage.enums import DeploymentAction, Role
from storage.queries.paging import Page


@dataclass(frozen=True)
class AgentInfo:
    """An agent and where its active pointer stands."""

    id: int
    name: str
    description: str
    domain: str
    active_number: int | None
    version_count: int
    created_at: datetime


@dataclass(frozen=True)
class ReleaseSettings:
    """An agent's release settings: who may activate a version the evaluation gate refuses.

    As a policy rule's ``override_roles`` name who may override a block, ``override_roles``
    name who may override the gate (with a reason, audited); empty means no one may.
    """

    agent: str
    override_roles: tuple[Role, ...]

    def allows_override(self, actor: Actor) -> bool:
        """Whether ``actor`` holds a role these settings name."""
        return actor.has_any(self.override_roles)

    def as_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "override_roles": [r.value for r in self.override_roles]}


@dataclass(frozen=True)
class VersionInfo:
    """One immutable version of an agent, as listed."""

    id: int
    agent: str
    number: int
    content_hash: str
    policy_hash: str
    note: str
    created_by: str
    created_at: datetime
    is_active: bool

    @property
    def short_hash(self) -> str:
        return self.content_hash[:12]


@dataclass(frozen=True)
class VersionDetail:
    """A version with its document and the YAML exactly as it was written."""

    info: VersionInfo
    document: dict[str, Any]
    source_yaml: str


@dataclass(frozen=True)
class DeploymentInfo:
    """One move of the active pointer: who, when, from which version, to which, and why."""

    id: int
    agent: str
    action: DeploymentAction
    from_number: int | None
    to_number: int
    actor: str
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class PinnedReview:
    """An open review raised by a version that is no longer the active one."""

    id: int
    run_id: int
    version: int
    status: str
    tool: str | None
    rule_id: str | None
    created_at: datetime
    sla_due_at: datetime | None


@dataclass(frozen=True)
class PinnedReviews:
    """The open reviews still pinned to an agent's inactive versions.

    Attributes:
        by_version: how many per version number.
        reviews: one page of them, oldest first (its total counts them all).
    """

    by_version: dict[int, int]
    reviews: Page[PinnedReview]

    @property
    def total(self) -> int:
        """How many there are."""
        return self.reviews.total
