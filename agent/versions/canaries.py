"""The canary rows the version service must see: which canary an agent runs, and ending it.

A canary never moves the active pointer, but the pointer's moves must respect it: activating
another version while one runs is refused (promote or abort it first), and a rollback, the
emergency lever, ends it. ``agent.release.canary`` starts, promotes, aborts and guards canaries
with these same two functions, so a canary ends the same way whoever ends it.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from storage.audit import append_event
from storage.enums import CanaryStatus
from storage.models import Agent, Canary
from storage.types import utcnow


def running_canary(session: Session, agent: Agent) -> Canary | None:
    """The agent's canary in progress, or None."""
    if agent.canary_id is None:
        return None
    canary = session.get(Canary, agent.canary_id)
    return canary if canary is not None and canary.status is CanaryStatus.RUNNING else None


def end_canary(
    session: Session,
    agent: Agent,
    canary: Canary,
    *,
    status: CanaryStatus,
    actor: str,
    reason: str,
    verdict: dict[str, Any] | None = None,
    audit: dict[str, Any] | None = None,
) -> Canary:
    """End ``canary`` as ``status`` in the caller's transaction: no new task is routed to its
    candidate from the commit on (runs already on it keep their version), and the end is
    audited as ``canary.<status>``."""
    canary.status = status
    canary.ended_at = utcnow()
    canary.ended_by = actor
    canary.end_reason = reason
    if verdict is not None:
        canary.verdict = verdict
    agent.canary_id = None
    session.add_all([canary, agent])
    session.flush()
    append_event(
        session,
        actor=actor,
        action=f"canary.{status.value}",
        target_type="agent",
        target_id=agent.name,
        payload={
            "canary_id": canary.id,
            "share": canary.share,
            "reason": reason,
            **({"verdict": verdict} if verdict is not None else {}),
            **(audit or {}),
        },
    )
    return canary
