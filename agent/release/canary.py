"""Canary releases: a share of an agent's new tasks runs on a candidate version, guarded.

``start_canary`` goes through the evaluation gate exactly as an activation does (an override
needs a role the release settings name, and a reason); from its commit on, workers route
``share`` percent of the agent's new tasks to the candidate, chosen by task
(``agent.runtime.routing``), and the rest to the active version, the baseline. Runs keep the
version they started on, and so do the reviews they raise, whatever happens to the canary.

The guard (``agent.release.guard``) compares the arms on governance health. A worker job,
``check_canaries``, rolls a canary back as soon as a guarded figure breaches significantly:
no new task goes to the candidate from then on, recorded on the canary with the comparison it
ended on and audited as ``canary.rolled_back``. People end a canary explicitly: engineers
promote it (the candidate becomes the active version, through the gate again), and operators
or engineers abort it. A rollback of the agent ends its canary too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from agent.actors import (
    READ_ROLES,
    ROLLBACK_ROLES,
    USER_ADMIN_ROLES,
    VERSION_ROLES,
    Actor,
    require,
)
from agent.errors import GateRefused, InvalidInput, NotFound
from agent.evals.gate import verdict_for
from agent.platform import Platform
from agent.release.guard import CanaryGuard, Comparison, compare
from agent.release.reasons import required_reason
from agent.versions.canaries import end_canary, running_canary
from agent.versions.rows import agent_row, row_id, version_numbers, version_row
from agent.versions.service import gate_record, move_pointer, require_override_role
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import CanaryStatus, DeploymentAction
from storage.models import Agent, AgentVersion, Canary
from storage.queries.canary import canary_reviews, canary_runs

log = logging.getLogger(__name__)

MIN_SHARE = 1
MAX_SHARE = 50
GUARD_ACTOR = "canary-guard"


@dataclass(frozen=True)
class CanaryInfo:
    """A canary release and how its arms compare (live while it runs; as it ended after)."""

    id: int
    agent: str
    candidate: int
    baseline: int
    share: int
    status: CanaryStatus
    reason: str
    started_by: str
    started_at: datetime
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str
    guard: dict[str, Any]
    gate: dict[str, Any]
    comparison: dict[str, Any]

    @property
    def running(self) -> bool:
        return self.status is CanaryStatus.RUNNING

    @property
    def automatic(self) -> bool:
        """Whether the guard ended it (an automatic rollback), not a person."""
        return self.status is CanaryStatus.ROLLED_BACK and self.ended_by == GUARD_ACTOR

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "status": self.status.value,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "automatic": self.automatic,
        }


def start_canary(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    number: int,
    *,
    share: int,
    reason: str,
    override: bool = False,
) -> CanaryInfo:
    """Send ``share`` percent of the agent's new tasks to version ``number``, guarded.

    Args:
        platform: the installation.
        actor: an engineer; with ``override``, a role the agent's release settings name.
        agent_name: the agent.
        number: the candidate version.
        share: the percentage of new tasks routed to the candidate, 1 to 50.
        reason: why, recorded on the canary and in the audit log.
        override: start even if the evaluation gate refuses the candidate (audited with the
            evaluations it overrode).

    Raises:
        Forbidden: the actor is not an engineer, or overrides without a named role.
        NotFound: no such agent or version.
        InvalidInput: the share or reason is out of range, the agent has no active version,
            the candidate is the active version, or a canary is already running.
        GateRefused: the gate refuses the candidate and there is no override.
    """
    if not override:
        require(actor, VERSION_ROLES, f"start a canary of {agent_name!r} version {number}")
    reason = required_reason(reason, "start a canary")
    if isinstance(share, bool) or not isinstance(share, int) or not MIN_SHARE <= share <= MAX_SHARE:
        raise InvalidInput(
            f"a canary's share is a whole percentage from {MIN_SHARE} to {MAX_SHARE} of new "
            f"tasks, not {share!r} (beyond half, activate the version instead)."
        )
    with write_session(platform.engine) as session:
        agent = agent_row(session, agent_name, lock=True)
        if override:
            require_override_role(actor, agent, number)
        candidate = version_row(session, agent, number)
        if agent.active_version_id is None:
            raise InvalidInput(
                f"{agent_name} has no active version to compare a canary with; activate one."
            )
        if agent.active_version_id == candidate.id:
            raise InvalidInput(f"{agent_name} version {number} is already the active version.")
        current = running_canary(session, agent)
        if current is not None:
            numbers = version_numbers(session, agent)
            raise InvalidInput(
                f"a canary of {agent_name} v{numbers.get(current.candidate_version_id)} is "
                f"already running; promote or abort it first."
            )
        verdict = verdict_for(session, agent, candidate)
        if not verdict.allowed and not override:
            raise GateRefused(
                f"{verdict.refusal()} A canary goes through the gate like an activation: "
                f"evaluate v{number} again, or override with a reason.",
                failing_cases=verdict.failing_cases,
                evaluation_ids=verdict.evaluation_ids,
                verdict=verdict.as_dict(),
            )
        gate = (
            gate_record(verdict)
            if verdict.allowed
            else {
                "override": True,
                "overridden_evaluations": list(verdict.evaluation_ids),
                "failing_cases": list(verdict.failing_cases),
                "verdict": verdict.as_dict(),
            }
        )
        guard = CanaryGuard.from_dict(agent.canary_guard)
        canary = Canary(
            agent_id=row_id(agent),
            candidate_version_id=row_id(candidate),
            baseline_version_id=agent.active_version_id,
            share=share,
            reason=reason,
            started_by=actor.name,
            guard=guard.as_dict(),
            gate=gate,
        )
        session.add(canary)
        session.flush()
        agent.canary_id = canary.id
        session.add(agent)
        append_event(
            session,
            actor=actor.name,
            action="canary.start",
            target_type="agent",
            target_id=agent_name,
            payload={
                "canary_id": canary.id,
                "candidate": number,
                "share": share,
                "reason": reason,
                "gate": gate,
                "guard": guard.as_dict(),
            },
        )
        return _info(session, agent, canary)


def promote_canary(
    platform: Platform, actor: Actor, agent_name: str, *, reason: str, override: bool = False
) -> CanaryInfo:
    """End the agent's canary by activating its candidate for every new task.

    The activation goes through the gate again (evaluations may have changed since the
    canary started), recorded as a deployment like any activation.

    Raises:
        Forbidden: the actor is not an engineer, or overrides without a named role.
        NotFound: no such agent.
        InvalidInput: no reason, or no canary is running.
        GateRefused: the gate now refuses the candidate and there is no override.
    """
    if not override:
        require(actor, VERSION_ROLES, f"promote the canary of {agent_name!r}")
    reason = required_reason(reason, "promote a canary")
    with write_session(platform.engine) as session:
        agent = agent_row(session, agent_name, lock=True)
        canary = _running(session, agent)
        candidate = _version(session, canary.candidate_version_id)
        if override:
            require_override_role(actor, agent, candidate.number)
        verdict = verdict_for(session, agent, candidate)
        if not verdict.allowed and not override:
            raise GateRefused(
                f"{verdict.refusal()} Promoting a canary is an activation: evaluate "
                f"v{candidate.number} again, or override with a reason.",
                failing_cases=verdict.failing_cases,
                evaluation_ids=verdict.evaluation_ids,
                verdict=verdict.as_dict(),
            )
        comparison = _compare(session, canary)
        end_canary(
            session,
            agent,
            canary,
            status=CanaryStatus.PROMOTED,
            actor=actor.name,
            reason=reason,
            verdict=comparison.as_dict(),
        )
        move_pointer(
            session,
            actor,
            agent=agent,
            version=candidate,
            action=(
                DeploymentAction.ACTIVATE if verdict.allowed else DeploymentAction.OVERRIDE_ACTIVATE
            ),
            reason=reason,
            audit={"canary_id": canary.id, "gate": gate_record(verdict)}
            if verdict.allowed
            else {"canary_id": canary.id, "override": True, "verdict": verdict.as_dict()},
        )
        return _info(session, agent, canary)


def abort_canary(platform: Platform, actor: Actor, agent_name: str, *, reason: str) -> CanaryInfo:
    """End the agent's canary: every new task runs on the active version again.

    Raises:
        Forbidden: the actor is neither an operator nor an engineer.
        NotFound: no such agent.
        InvalidInput: no reason, or no canary is running.
    """
    require(actor, ROLLBACK_ROLES, f"abort the canary of {agent_name!r}")
    reason = required_reason(reason, "abort a canary")
    with write_session(platform.engine) as session:
        agent = agent_row(session, agent_name, lock=True)
        canary = _running(session, agent)
        end_canary(
            session,
            agent,
            canary,
            status=CanaryStatus.ABORTED,
            actor=actor.name,
            reason=reason,
            verdict=_compare(session, canary).as_dict(),
        )
        return _info(session, agent, canary)


@dataclass(frozen=True)
class GuardRound:
    """What one turn of the guard did: the canaries it rolled back, and how many still run."""

    rolled_back: tuple[CanaryInfo, ...]
    running: int


def check_canaries(platform: Platform) -> GuardRound:
    """The guard's turn (a worker job): compare every running canary's arms and roll back each
    whose candidate is significantly worse.

    Several workers may run it at once: each canary is re-read under its agent's lock, in a
    transaction that loaded nothing before it, so a canary is rolled back once.
    """
    with read_session(platform.engine) as session:
        running = session.exec(
            select(col(Canary.id), col(Agent.name))
            .join(Agent, col(Agent.id) == col(Canary.agent_id))
            .where(col(Canary.status) == CanaryStatus.RUNNING)
        ).all()
    rolled_back = []
    for canary_id, agent_name in running:
        if canary_id is None:  # pragma: no cover - a stored row has its id
            continue
        try:
            outcome = _check_one(platform, canary_id, agent_name)
        except Exception:
            log.exception("canary %s: the guard could not be checked", canary_id)
            continue
        if outcome is not None:
            rolled_back.append(outcome)
    return GuardRound(rolled_back=tuple(rolled_back), running=len(running) - len(rolled_back))


def _check_one(platform: Platform, canary_id: int, agent_name: str) -> CanaryInfo | None:
    with write_session(platform.engine) as session:
        agent = agent_row(session, agent_name, lock=True)
        canary = running_canary(session, agent)
        if canary is None or canary.id != canary_id:
            return None
        comparison = _compare(session, canary)
        if comparison.state != "breach":
            return None
        end_canary(
            session,
            agent,
            canary,
            status=CanaryStatus.ROLLED_BACK,
            actor=GUARD_ACTOR,
            reason=f"rolled back automatically: {comparison.summary()}",
            verdict=comparison.as_dict(),
            audit={"automatic": True},
        )
        log.warning("canary %s of %s rolled back: %s", canary_id, agent_name, comparison.summary())
        return _info(session, agent, canary, comparison=comparison)


def canary_status(platform: Platform, actor: Actor, agent_name: str) -> CanaryInfo | None:
    """The agent's running canary with its live comparison, else its latest ended one, else
    None.

    Raises:
        Forbidden: the actor holds no role.
        NotFound: no such agent.
    """
    require(actor, READ_ROLES, f"read the canary of {agent_name!r}")
    with read_session(platform.engine) as session:
        agent = agent_row(session, agent_name)
        canary = (
            running_canary(session, agent)
            or session.exec(
                select(Canary)
                .where(col(Canary.agent_id) == agent.id)
                .order_by(col(Canary.id).desc())
                .limit(1)
            ).first()
        )
        return None if canary is None else _info(session, agent, canary)


def list_canaries(
    platform: Platform, actor: Actor, agent_name: str | None = None, *, limit: int = 20
) -> tuple[CanaryInfo, ...]:
    """Canary releases, newest first, of one agent or of every agent (the KPI page's list).

    Raises:
        Forbidden: the actor holds no role.
        NotFound: no such agent.
        InvalidInput: the limit is out of range.
    """
    require(actor, READ_ROLES, "read canary releases")
    if not 1 <= limit <= 500:
        raise InvalidInput(f"list 1 to 500 canary releases at a time, not {limit}.")
    with read_session(platform.engine) as session:
        query = select(Canary, Agent).join(Agent, col(Agent.id) == col(Canary.agent_id))
        if agent_name is not None:
            query = query.where(col(Agent.id) == agent_row(session, agent_name).id)
        rows = session.exec(query.order_by(col(Canary.id).desc()).limit(limit)).all()
        return tuple(_info(session, agent, canary) for canary, agent in rows)


def canary_guard(platform: Platform, actor: Actor, agent_name: str) -> CanaryGuard:
    """The guard the agent's next canary will be held to (its release settings).

    Raises:
        Forbidden: the actor holds no role.
        NotFound: no such agent.
    """
    require(actor, READ_ROLES, f"read the release settings of {agent_name!r}")
    with read_session(platform.engine) as session:
        return CanaryGuard.from_dict(agent_row(session, agent_name).canary_guard)


def set_canary_guard(
    platform: Platform, actor: Actor, agent_name: str, assignments: Sequence[str]
) -> CanaryGuard:
    """Change the guard in the agent's release settings with ``KEY=VALUE`` assignments (a
    figure's threshold, ``off`` to stop guarding it, ``min_samples``, ``alpha``). A running
    canary keeps the guard it started with.

    Raises:
        Forbidden: the actor is not an admin.
        NotFound: no such agent.
        InvalidInput: an assignment is malformed or out of range (nothing is changed).
    """
    require(actor, USER_ADMIN_ROLES, f"change the release settings of {agent_name!r}")
    with write_session(platform.engine) as session:
        agent = agent_row(session, agent_name, lock=True)
        before = CanaryGuard.from_dict(agent.canary_guard)
        after = before.with_changes(assignments)
        agent.canary_guard = after.as_dict()
        session.add(agent)
        append_event(
            session,
            actor=actor.name,
            action="agent.release",
            target_type="agent",
            target_id=agent_name,
            payload={"canary_guard": {"from": before.as_dict(), "to": after.as_dict()}},
        )
        return after


def _running(session: Session, agent: Agent) -> Canary:
    canary = running_canary(session, agent)
    if canary is None:
        raise InvalidInput(
            f"{agent.name} has no canary running; start one with "
            f"steward versions canary {agent.name} N --share 10 --reason R."
        )
    return canary


def _version(session: Session, version_id: int) -> AgentVersion:
    version = session.get(AgentVersion, version_id)
    if version is None:  # pragma: no cover - canaries reference versions by foreign key
        raise NotFound(f"version id {version_id} no longer exists.")
    return version


def _compare(session: Session, canary: Canary) -> Comparison:
    canary_id = row_id(canary)
    return compare(
        canary_runs(canary_id, session=session),
        canary_reviews(canary_id, session=session),
        baseline_version_id=canary.baseline_version_id,
        candidate_version_id=canary.candidate_version_id,
        guard=CanaryGuard.from_dict(canary.guard),
    )


def _info(
    session: Session, agent: Agent, canary: Canary, *, comparison: Comparison | None = None
) -> CanaryInfo:
    numbers = version_numbers(session, agent)
    if canary.status is CanaryStatus.RUNNING:
        compared = (comparison or _compare(session, canary)).as_dict()
    else:
        compared = dict(canary.verdict)
    return CanaryInfo(
        id=row_id(canary),
        agent=agent.name,
        candidate=numbers.get(canary.candidate_version_id, 0),
        baseline=numbers.get(canary.baseline_version_id, 0),
        share=canary.share,
        status=canary.status,
        reason=canary.reason,
        started_by=canary.started_by,
        started_at=canary.started_at,
        ended_at=canary.ended_at,
        ended_by=canary.ended_by,
        end_reason=canary.end_reason,
        guard=dict(canary.guard),
        gate=dict(canary.gate),
        comparison=compared,
    )


__all__ = [
    "GUARD_ACTOR",
    "CanaryInfo",
    "GuardRound",
    "abort_canary",
    "canary_guard",
    "canary_status",
    "check_canaries",
    "list_canaries",
    "promote_canary",
    "set_canary_guard",
    "start_canary",
]
