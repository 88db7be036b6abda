"""Looking up agent and version rows by name and number, and turning rows into read models."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from agent.errors import NotFound
from agent.versions.models import AgentInfo, DeploymentInfo, ReleaseSettings, VersionInfo
from storage.enums import Role
from storage.models import Agent, AgentVersion, Deployment


def agent_row(session: Session, name: str, *, lock: bool = False) -> Agent:
    """The agent named ``name`` (locked FOR UPDATE when ``lock``), or ``NotFound``."""
    query = select(Agent).where(Agent.name == name)
    if lock:
        # Serializes version numbering and pointer moves per agent on PostgreSQL; SQLite's
        # write transaction (BEGIN IMMEDIATE) already does.
        query = query.with_for_update()
    agent = session.exec(query).first()
    if agent is None:
        raise NotFound(f"there is no agent named {name!r}.")
    return agent


def version_row(session: Session, agent: Agent, number: int) -> AgentVersion:
    """Version ``number`` of ``agent``, or ``NotFound``."""
    version = session.exec(
        select(AgentVersion).where(AgentVersion.agent_id == agent.id, AgentVersion.number == number)
    ).first()
    if version is None:
        raise NotFound(f"{agent.name} has no version {number}.")
    return version


def version_numbers(session: Session, agent: Agent) -> dict[int, int]:
    """Version id -> version number for every version of ``agent``."""
    rows = session.exec(
        select(AgentVersion.id, AgentVersion.number).where(AgentVersion.agent_id == agent.id)
    ).all()
    return {int(version_id): number for version_id, number in rows if version_id is not None}


def row_id(row: Any) -> int:
    """The primary key of a flushed row."""
    identifier = row.id
    if identifier is None:  # pragma: no cover - rows are flushed before their id is read
        raise RuntimeError(f"{type(row).__name__} has no id yet")
    return int(identifier)


def agent_info(session: Session, agent: Agent) -> AgentInfo:
    """The read model of an agent row."""
    numbers = version_numbers(session, agent)
    active = numbers.get(agent.active_version_id) if agent.active_version_id else None
    return AgentInfo(
        id=row_id(agent),
        name=agent.name,
        description=agent.description,
        domain=agent.domain,
        active_number=active,
        version_count=len(numbers),
        created_at=agent.created_at,
    )


def version_info(agent: Agent, version: AgentVersion) -> VersionInfo:
    """The read model of a version row."""
    return VersionInfo(
        id=row_id(version),
        agent=agent.name,
        number=version.number,
        content_hash=version.content_hash,
        policy_hash=version.policy_hash,
        note=version.note,
        created_by=version.created_by,
        created_at=version.created_at,
        is_active=agent.active_version_id == version.id,
    )


def deployment_info(
    agent: Agent, deployment: Deployment, numbers: dict[int, int]
) -> DeploymentInfo:
    """The read model of a deployment row, with version numbers instead of ids."""
    return DeploymentInfo(
        id=row_id(deployment),
        agent=agent.name,
        action=deployment.action,
        from_number=numbers.get(deployment.from_version_id) if deployment.from_version_id else None,
        to_number=numbers[deployment.to_version_id],
        actor=deployment.actor,
        reason=deployment.reason,
        created_at=deployment.created_at,
    )


def release_settings_of(agent: Agent) -> ReleaseSettings:
    """The read model of an agent's release settings (unknown stored role names are dropped:
    they name no one)."""
    known = {role.value for role in Role}
    return ReleaseSettings(
        agent=agent.name,
        override_roles=tuple(Role(r) for r in agent.release_override_roles if r in known),
    )
