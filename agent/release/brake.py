"""The emergency brake: pause an agent so that none of its runs starts or goes on, then resume it.

While an agent is paused, workers claim none of its work: queued tasks wait, a run ready to
continue after a review waits, and a running run parks before its next call (within
``agent.platform.PAUSE_TTL_S`` in other processes, at once in this one). Nothing is cancelled;
resuming lets every run carry on from where it stopped. Evaluations are never paused. Operators,
managers and engineers can pull the brake; releasing it needs an operator or an engineer. Both
are audited with their reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from agent.actors import READ_ROLES, Actor, require
from agent.errors import InvalidInput
from agent.platform import Platform
from agent.release.reasons import required_reason
from agent.versions.rows import agent_row
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import Role
from storage.models import Agent
from storage.types import utcnow

PAUSE_ROLES = frozenset({Role.OPERATOR, Role.MANAGER, Role.ENGINEER})
RESUME_ROLES = frozenset({Role.OPERATOR, Role.ENGINEER})


@dataclass(frozen=True)
class PauseState:
    """Whether an agent is paused, by whom, since when and why."""

    agent: str
    paused: bool
    paused_at: datetime | None
    paused_by: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "paused_at": self.paused_at.isoformat() if self.paused_at else None,
        }


def pause_agent(platform: Platform, actor: Actor, agent_name: str, *, reason: str) -> PauseState:
    """Pause ``agent_name``: its work waits until someone resumes it.

    Raises:
        Forbidden: the actor is not an operator, manager or engineer.
        NotFound: no such agent.
        InvalidInput: no reason, or the agent is already paused (the message says by whom).
    """
    require(actor, PAUSE_ROLES, f"pause agent {agent_name!r}")
    reason = required_reason(reason, "pause an agent")
    with write_session(platform.engine) as session:
        agent = agent_row(session, agent_name, lock=True)
        if agent.paused_at is not None:
            raise InvalidInput(
                f"agent {agent_name!r} is already paused, by {agent.paused_by} since "
                f"{agent.paused_at:%Y-%m-%d %H:%M} UTC: {agent.pause_reason}"
            )
        agent.paused_at, agent.paused_by, agent.pause_reason = utcnow(), actor.name, reason
        session.add(agent)
        append_event(
            session,
            actor=actor.name,
            action="agent.pause",
            target_type="agent",
            target_id=agent.id or 0,
            payload={"agent": agent_name, "reason": reason},
        )
        state = _state(agent)
    platform.pauses.forget()
    return state


def resume_agent(platform: Platform, actor: Actor, agent_name: str, *, reason: str) -> PauseState:
    """Release the brake: the agent's waiting work is claimed again.

    Raises:
        Forbidden: the actor is neither an operator nor an engineer.
        NotFound: no such agent.
        InvalidInput: no reason, or the agent is not paused.
    """
    require(actor, RESUME_ROLES, f"resume agent {agent_name!r}")
    reason = required_reason(reason, "resume an agent")
    with write_session(platform.engine) as session:
        agent = agent_row(session, agent_name, lock=True)
        if agent.paused_at is None:
            raise InvalidInput(f"agent {agent_name!r} is not paused.")
        paused = {"paused_by": agent.paused_by, "paused_at": agent.paused_at.isoformat()}
        agent.paused_at, agent.paused_by, agent.pause_reason = None, None, ""
        session.add(agent)
        append_event(
            session,
            actor=actor.name,
            action="agent.resume",
            target_type="agent",
            target_id=agent.id or 0,
            payload={"agent": agent_name, "reason": reason, **paused},
        )
        state = _state(agent)
    platform.pauses.forget()
    return state


def paused_agents(platform: Platform, actor: Actor) -> tuple[PauseState, ...]:
    """Every paused agent, longest paused first (what every page warns about)."""
    require(actor, READ_ROLES, "see which agents are paused")
    with read_session(platform.engine) as session:
        agents = session.exec(
            select(Agent).where(col(Agent.paused_at).is_not(None)).order_by(col(Agent.paused_at))
        ).all()
    return tuple(_state(a) for a in agents)


def _state(agent: Agent) -> PauseState:
    return PauseState(
        agent=agent.name,
        paused=agent.paused_at is not None,
        paused_at=agent.paused_at,
        paused_by=agent.paused_by,
        reason=agent.pause_reason,
    )
