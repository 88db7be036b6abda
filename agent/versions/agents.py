"""Agents: the named things Steward governs, each with versions and one active pointer.

Like every service, each function takes the ``Platform`` and the acting ``Actor`` and runs in its
own transaction, with the audit event of a change inside it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select

from agent.actors import READ_ROLES, USER_ADMIN_ROLES, VERSION_ROLES, Actor, require
from agent.errors import InvalidInput
from agent.platform import Platform
from agent.reads.paging import DEFAULT_LIMIT, Page, check_window
from agent.versions.models import AgentInfo, ReleaseSettings
from agent.versions.rows import agent_info, agent_row, release_settings_of
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import Role
from storage.models import Agent

AGENT_ROLES = VERSION_ROLES | {Role.ADMIN}
AGENT_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def create_agent(
    platform: Platform, actor: Actor, name: str, *, description: str = "", domain: str = ""
) -> AgentInfo:
    """Register a new agent (it has no version until one is created and activated).

    Args:
        platform: the installation.
        actor: an engineer or admin.
        name: 1-64 characters of ``a-z 0-9 _ . -``, starting with a letter or digit.
        description: what the agent is for.
        domain: the business area it serves (support, billing...).

    Raises:
        Forbidden: the actor is neither engineer nor admin.
        InvalidInput: the name is malformed or taken, or a text is too long.
    """
    require(actor, AGENT_ROLES, f"create agent {name!r}")
    _check_agent_name(name)
    if len(description) > 2000 or len(domain) > 200:
        raise InvalidInput("the description is limited to 2000 characters, the domain to 200.")
    with write_session(platform.engine) as session:
        if session.exec(select(Agent.id).where(Agent.name == name)).first() is not None:
            raise InvalidInput(f"an agent named {name!r} already exists.")
        agent = Agent(name=name, description=description.strip(), domain=domain.strip())
        session.add(agent)
        try:
            session.flush()
        except IntegrityError:  # created concurrently since the check above
            raise InvalidInput(f"an agent named {name!r} already exists.") from None
        append_event(
            session,
            actor=actor.name,
            action="agent.create",
            target_type="agent",
            target_id=name,
            payload={"description": agent.description, "domain": agent.domain},
        )
        return agent_info(session, agent)


def list_agents(
    platform: Platform, actor: Actor, *, offset: int = 0, limit: int = DEFAULT_LIMIT
) -> Page[AgentInfo]:
    """The agents by name, each with its active version number: ``limit`` of them after the
    first ``offset``.

    Raises:
        Forbidden: the actor holds no role.
        InvalidInput: the window is out of range.
    """
    require(actor, READ_ROLES, "list agents")
    check_window(offset, limit, "agents")
    with read_session(platform.engine) as session:
        total = session.exec(select(func.count()).select_from(Agent)).one()
        agents = session.exec(
            select(Agent).order_by(col(Agent.name)).offset(offset).limit(limit)
        ).all()
        return Page(tuple(agent_info(session, agent) for agent in agents), total, offset, limit)


def release_settings(platform: Platform, actor: Actor, agent_name: str) -> ReleaseSettings:
    """The agent's release settings: who may override the evaluation gate.

    Raises:
        Forbidden: the actor holds no role.
        NotFound: no such agent.
    """
    require(actor, READ_ROLES, f"read the release settings of {agent_name!r}")
    with read_session(platform.engine) as session:
        return release_settings_of(agent_row(session, agent_name))


def set_release_settings(
    platform: Platform, actor: Actor, agent_name: str, *, override_roles: Iterable[str]
) -> ReleaseSettings:
    """Name the roles that may activate a version the evaluation gate refuses (none: no one).

    Args:
        platform: the installation.
        actor: an admin.
        agent_name: the agent.
        override_roles: role names (operator, manager, engineer, admin).

    Raises:
        Forbidden: the actor is not an admin.
        NotFound: no such agent.
        InvalidInput: a name is not a role.
    """
    require(actor, USER_ADMIN_ROLES, f"change the release settings of {agent_name!r}")
    roles = _roles(override_roles)
    with write_session(platform.engine) as session:
        agent = agent_row(session, agent_name, lock=True)
        before = list(agent.release_override_roles)
        agent.release_override_roles = [role.value for role in roles]
        session.add(agent)
        session.flush()
        append_event(
            session,
            actor=actor.name,
            action="agent.release",
            target_type="agent",
            target_id=agent_name,
            payload={"override_roles": {"from": before, "to": agent.release_override_roles}},
        )
        return release_settings_of(agent)


def _roles(names: Iterable[str]) -> tuple[Role, ...]:
    chosen: list[Role] = []
    for name in (n.strip() for n in names):
        if not name:
            continue
        try:
            role = Role(name)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise InvalidInput(f"{name!r} is not a role; the roles are {known}.") from None
        if role not in chosen:
            chosen.append(role)
    return tuple(sorted(chosen, key=lambda r: list(Role).index(r)))


def _check_agent_name(name: str) -> None:
    if not AGENT_NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"agent name {name!r} must be 1-64 characters of a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit."
        )
