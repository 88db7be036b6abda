"""Gateway tokens: one bearer token per client, mapped to a Steward user and one agent.

An admin creates a token for a user (``steward gateway token create AGENT --user NAME``); the
token is shown once and stored as its SHA-256. Every request is identified afresh: a disabled
user, a revoked token or a token of another agent is refused, and the user's roles are read
now, so taking a role away takes effect at the next call.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlmodel import col, select

from agent.actors import SUBMIT_ROLES, USER_ADMIN_ROLES, Actor, require
from agent.errors import InvalidInput, NotFound
from agent.platform import Platform
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.models import Agent, GatewayToken, User
from storage.types import utcnow

TOKEN_PREFIX = "stw_"  # noqa: S105 - a prefix that marks the kind of token, not a secret


@dataclass(frozen=True)
class GatewayIdentity:
    """Who a request comes from: the token, its user (with the roles they hold now) and the
    agent it may call."""

    token_id: int
    actor: Actor
    agent_id: int
    agent_name: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    platform: Platform, actor: Actor, agent_name: str, user_name: str, *, label: str = ""
) -> str:
    """A new gateway token for ``user_name`` on ``agent_name``; returned once, stored hashed.

    Raises:
        Forbidden: the actor is not an admin.
        NotFound: no such agent or user.
        InvalidInput: the user is disabled or may not submit work (no operator, manager or
            engineer role).
    """
    require(actor, USER_ADMIN_ROLES, f"create a gateway token for {agent_name}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_session(platform.engine) as session:
        agent = session.exec(select(Agent).where(col(Agent.name) == agent_name)).first()
        if agent is None or agent.id is None:
            raise NotFound(f"no agent named {agent_name!r}.")
        user = session.exec(select(User).where(col(User.name) == user_name)).first()
        if user is None or user.id is None:
            raise NotFound(f"no user named {user_name!r}.")
        if user.disabled:
            raise InvalidInput(f"{user_name} is disabled; enable the account first.")
        if not SUBMIT_ROLES & set(user.roles):
            raise InvalidInput(
                f"{user_name} may not submit work (roles: {', '.join(user.roles) or 'none'}); "
                "a gateway client acts as a user with the operator, manager or engineer role."
            )
        row = GatewayToken(
            agent_id=agent.id,
            user_id=user.id,
            token_hash=_digest(token),
            label=label.strip()[:200],
            created_by=actor.name,
        )
        session.add(row)
        session.flush()
        append_event(
            session,
            actor=actor.name,
            action="gateway.token.create",
            target_type="gateway_token",
            target_id=row.id or 0,
            payload={"agent": agent_name, "user": user_name, "label": row.label},
        )
    return token


def revoke_token(platform: Platform, actor: Actor, token_id: int) -> None:
    """Revoke a gateway token: its next request is refused.

    Raises:
        Forbidden: the actor is not an admin.
        NotFound: no such token, or it is revoked already.
    """
    require(actor, USER_ADMIN_ROLES, "revoke a gateway token")
    with write_session(platform.engine) as session:
        row = session.get(GatewayToken, token_id)
        if row is None or row.revoked_at is not None:
            raise NotFound(f"no active gateway token {token_id}.")
        row.revoked_at = utcnow()
        session.add(row)
        append_event(
            session,
            actor=actor.name,
            action="gateway.token.revoke",
            target_type="gateway_token",
            target_id=token_id,
        )


def identify(platform: Platform, token: str, agent_name: str) -> GatewayIdentity | None:
    """The identity behind ``token`` for calls to ``agent_name``, or None when the token is
    unknown, revoked, for another agent, or its user is disabled or may not submit work."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with read_session(platform.engine) as session:
        found = session.exec(
            select(GatewayToken, User, Agent)
            .join(User, col(User.id) == GatewayToken.user_id)
            .join(Agent, col(Agent.id) == GatewayToken.agent_id)
            .where(col(GatewayToken.token_hash) == _digest(token))
        ).first()
    if found is None:
        return None
    row, user, agent = found
    if row.revoked_at is not None or user.disabled or agent.name != agent_name:
        return None
    actor = Actor.of(user.name, user.roles)
    if not SUBMIT_ROLES & actor.roles:
        return None
    assert row.id is not None
    assert agent.id is not None
    return GatewayIdentity(row.id, actor, agent.id, agent.name)
