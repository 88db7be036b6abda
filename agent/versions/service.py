"""An agent's versions: create, list, show, activate (through the evaluation gate), roll back;
each change audited.

Every function a person goes through takes the ``Platform`` first and the acting ``Actor``
second, and runs in its own transaction, so a change and its audit event commit together or not
at all. Versions are immutable: no function here updates a version row; activation and rollback
move the agent's active pointer and record a ``Deployment``. ``active_version`` is the
runtime's look-up (no person, no role) and reads in the caller's session.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, func, select

from agent.actors import READ_ROLES, ROLLBACK_ROLES, VERSION_ROLES, Actor, require
from agent.errors import Forbidden, GateRefused, InvalidInput, NotFound
from agent.evals.gate import GateVerdict, verdict_for
from agent.platform import Platform
from agent.reads.paging import DEFAULT_LIMIT, Page, check_window
from agent.spec import VersionSpec
from agent.tools.registry import ToolRegistry
from agent.versions.cache import load_spec
from agent.versions.canaries import end_canary, running_canary
from agent.versions.document import parse_version
from agent.versions.models import DeploymentInfo, VersionDetail, VersionInfo
from agent.versions.rows import (
    agent_row,
    deployment_info,
    release_settings_of,
    row_id,
    version_info,
    version_numbers,
    version_row,
)
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import CanaryStatus, DeploymentAction
from storage.models import Agent, AgentVersion, Deployment

MAX_NOTE = 500
MAX_REASON = 2000


def create_version(
    platform: Platform, actor: Actor, agent_name: str, yaml_text: str, *, note: str = ""
) -> VersionInfo:
    """Validate a version's YAML and store it as the agent's next, immutable version.

    The new version is not active; ``activate_version`` moves the pointer.

    Args:
        platform: the installation.
        actor: an engineer.
        agent_name: the agent the version belongs to.
        yaml_text: the version document, stored verbatim next to its validated JSON.
        note: what changed and why, in a sentence.

    Raises:
        Forbidden: the actor is not an engineer.
        NotFound: there is no such agent.
        VersionSpecError: the document is invalid or could not run (the message names the
            line).
        InvalidInput: the same content is already stored as a version of this agent.
    """
    with write_session(platform.engine) as session:
        return _create_version(
            session, actor, agent_name, yaml_text, note=note, registry=platform.registry
        )


def _create_version(
    session: Session,
    actor: Actor,
    agent_name: str,
    yaml_text: str,
    *,
    note: str,
    registry: ToolRegistry,
) -> VersionInfo:
    require(actor, VERSION_ROLES, f"create a version of {agent_name!r}")
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"the note is limited to {MAX_NOTE} characters.")
    parsed = parse_version(yaml_text, registry=registry)
    agent = agent_row(session, agent_name, lock=True)
    same = session.exec(
        select(AgentVersion.number).where(
            AgentVersion.agent_id == agent.id, AgentVersion.content_hash == parsed.content_hash
        )
    ).first()
    if same is not None:
        raise InvalidInput(
            f"{agent_name} version {same} already has exactly this content "
            f"(hash {parsed.content_hash[:12]}); versions are immutable, so activate "
            f"version {same} instead of storing it twice."
        )
    last = session.exec(
        select(func.max(AgentVersion.number)).where(AgentVersion.agent_id == agent.id)
    ).one()
    version = AgentVersion(
        agent_id=row_id(agent),
        number=(last or 0) + 1,
        content_hash=parsed.content_hash,
        policy_hash=parsed.policy_hash,
        spec=parsed.document,
        source_yaml=yaml_text,
        note=note.strip(),
        created_by=actor.name,
    )
    session.add(version)
    session.flush()
    append_event(
        session,
        actor=actor.name,
        action="version.create",
        target_type="agent_version",
        target_id=row_id(version),
        payload={
            "agent": agent_name,
            "number": version.number,
            "content_hash": version.content_hash,
            "policy_hash": version.policy_hash,
            "note": version.note,
        },
    )
    return version_info(agent, version)


def list_versions(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> Page[VersionInfo]:
    """The agent's versions, newest first, with the active one flagged: ``limit`` of them after
    the first ``offset``.

    Raises:
        Forbidden: the actor holds no role.
        NotFound: no such agent.
        InvalidInput: the window is out of range.
    """
    require(actor, READ_ROLES, f"list the versions of {agent_name!r}")
    check_window(offset, limit, "versions")
    with read_session(platform.engine) as session:
        agent = agent_row(session, agent_name)
        mine = AgentVersion.agent_id == agent.id
        total = session.exec(select(func.count()).select_from(AgentVersion).where(mine)).one()
        versions = session.exec(
            select(AgentVersion)
            .where(mine)
            .order_by(col(AgentVersion.number).desc())
            .offset(offset)
            .limit(limit)
        ).all()
        return Page(tuple(version_info(agent, v) for v in versions), total, offset, limit)


def show_version(platform: Platform, actor: Actor, agent_name: str, number: int) -> VersionDetail:
    """One version with its validated document and its YAML as written.

    Raises:
        NotFound: no such agent or version.
    """
    require(actor, READ_ROLES, f"read {agent_name!r} version {number}")
    with read_session(platform.engine) as session:
        agent = agent_row(session, agent_name)
        version = version_row(session, agent, number)
        return VersionDetail(
            info=version_info(agent, version),
            document=dict(version.spec),
            source_yaml=version.source_yaml,
        )


def activate_version(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    number: int,
    *,
    reason: str,
    override: bool = False,
) -> DeploymentInfo:
    """Make version ``number`` the one new runs of the agent use, if the activation gate lets it.

    The gate (``agent.evals.gate``) is decided in the transaction that moves the pointer: every
    required suite needs a finished evaluation of this exact content hash that passed every
    security case, regressed on no case the active version passes, and met its threshold. A
    version that was active before is never gated: returning to it is the emergency lever.
    Runs already started keep the version they pinned.

    Args:
        platform: the installation.
        actor: an engineer; with ``override``, a role the agent's release settings name.
        agent_name: the agent.
        number: the version to activate.
        reason: why, recorded with the deployment (and, for an override, with the verdict
            and the evaluations it overrode).
        override: activate even if the gate refuses. Recorded as ``override_activate`` only
            when the gate did refuse; otherwise the activation is an ordinary one.

    Raises:
        Forbidden: the actor is not an engineer, or overrides without a role the agent's
            release settings name.
        NotFound: no such agent or version.
        InvalidInput: the reason is empty, the version is already active, or a canary is
            running (promote or abort it first).
        GateRefused: the gate refuses the version and there is no override (the message
            names the failing suites and cases).
    """
    if not override:
        require(actor, VERSION_ROLES, f"activate {agent_name!r} version {number}")
    reason = _check_reason(reason)
    with write_session(platform.engine) as session:
        agent = agent_row(session, agent_name, lock=True)
        if override:
            require_override_role(actor, agent, number)
        version = version_row(session, agent, number)
        if agent.active_version_id == version.id:
            raise InvalidInput(f"{agent_name} version {number} is already active.")
        _refuse_during_canary(session, agent)
        verdict = verdict_for(session, agent, version)
        if verdict.allowed:
            return move_pointer(
                session,
                actor,
                agent=agent,
                version=version,
                action=DeploymentAction.ACTIVATE,
                reason=reason,
                audit={"gate": gate_record(verdict)},
            )
        if not override:
            raise GateRefused(
                f"{verdict.refusal()} Evaluate v{number} again, or override with a reason "
                "(a role the agent's release settings name).",
                failing_cases=verdict.failing_cases,
                evaluation_ids=verdict.evaluation_ids,
                verdict=verdict.as_dict(),
            )
        return move_pointer(
            session,
            actor,
            agent=agent,
            version=version,
            action=DeploymentAction.OVERRIDE_ACTIVATE,
            reason=reason,
            audit={
                "override": True,
                "overridden_evaluations": list(verdict.evaluation_ids),
                "failing_cases": list(verdict.failing_cases),
                "verdict": verdict.as_dict(),
            },
        )


def _refuse_during_canary(session: Session, agent: Agent) -> None:
    canary = running_canary(session, agent)
    if canary is None:
        return
    numbers = version_numbers(session, agent)
    raise InvalidInput(
        f"a canary of {agent.name} v{numbers.get(canary.candidate_version_id)} is running "
        f"({canary.share}% of new tasks); promote or abort it before activating another "
        f"version (steward versions promote|abort {agent.name})."
    )


def gate_record(verdict: GateVerdict) -> dict[str, Any]:
    """What the audit event of an activation the gate let through says of the gate."""
    if verdict.previously_active:
        return {"gated": False, "why": "it was active before"}
    return {"gated": True, "evaluations": list(verdict.evaluation_ids)}


def require_override_role(actor: Actor, agent: Agent, number: int) -> None:
    settings = release_settings_of(agent)
    if settings.allows_override(actor):
        return
    held = ", ".join(sorted(r.value for r in actor.roles)) or "no role"
    named = (
        f"name only {' or '.join(r.value for r in settings.override_roles)}"
        if settings.override_roles
        else "name no role, so no one may override its gate"
    )
    raise Forbidden(
        f"{actor.name} ({held}) may not override the activation gate for {agent.name} "
        f"version {number}: its release settings {named} "
        f"(an admin sets them: steward agents release {agent.name} --override-roles ...)."
    )


def rollback(platform: Platform, actor: Actor, agent_name: str, *, reason: str) -> DeploymentInfo:
    """Undo the last activation: return to the version that was active before the current one.

    Never gated: a rollback is the emergency lever, and its target was active before. A canary
    in progress ends with it (aborted, audited).

    The deployment history is replayed as a stack (an activation pushes, a rollback pops), so
    rolling back twice after activating 1, 2 and 3 returns to 1, not back to 3.

    Raises:
        Forbidden: the actor is not an engineer.
        NotFound: no such agent.
        InvalidInput: the reason is empty, or there is no earlier version to return to.
    """
    require(actor, ROLLBACK_ROLES, f"roll back {agent_name!r}")
    reason = _check_reason(reason)
    with write_session(platform.engine) as session:
        agent = agent_row(session, agent_name, lock=True)
        stack = _activation_stack(session, agent)
        if len(stack) < 2:
            raise InvalidInput(
                f"{agent_name} has no earlier active version to roll back to; "
                "activate a version by number instead."
            )
        target = session.get(AgentVersion, stack[-2])
        if target is None:  # pragma: no cover - deployments reference versions by foreign key
            raise NotFound(f"version id {stack[-2]} of {agent_name} no longer exists.")
        canary = running_canary(session, agent)
        if canary is not None:
            # The emergency lever ends a canary too: from the rollback on, every new task
            # runs on the version rolled back to.
            end_canary(
                session,
                agent,
                canary,
                status=CanaryStatus.ABORTED,
                actor=actor.name,
                reason=f"ended by a rollback: {reason}",
            )
        return move_pointer(
            session,
            actor,
            agent=agent,
            version=target,
            action=DeploymentAction.ROLLBACK,
            reason=reason,
        )


def rollback_target(platform: Platform, actor: Actor, agent_name: str) -> VersionInfo | None:
    """The version ``rollback`` would return to now, or None when there is none.

    Raises:
        NotFound: no such agent.
    """
    require(actor, READ_ROLES, f"read the deployment history of {agent_name!r}")
    with read_session(platform.engine) as session:
        agent = agent_row(session, agent_name)
        stack = _activation_stack(session, agent)
        if len(stack) < 2:
            return None
        target = session.get(AgentVersion, stack[-2])
        return version_info(agent, target) if target is not None else None


def _activation_stack(session: Session, agent: Agent) -> list[int]:
    """The version ids the agent was activated on, replayed as a stack (a rollback pops)."""
    deployments = session.exec(
        select(Deployment).where(Deployment.agent_id == agent.id).order_by(col(Deployment.id))
    ).all()
    stack: list[int] = []
    for deployment in deployments:
        if deployment.action is DeploymentAction.ROLLBACK:
            stack.pop()
        else:
            stack.append(deployment.to_version_id)
    return stack


def deployment_history(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> Page[DeploymentInfo]:
    """The moves of the agent's active pointer, newest first: ``limit`` of them after the first
    ``offset``.

    Raises:
        Forbidden: the actor holds no role.
        NotFound: no such agent.
        InvalidInput: the window is out of range.
    """
    require(actor, READ_ROLES, f"read the deployment history of {agent_name!r}")
    check_window(offset, limit, "deployments")
    with read_session(platform.engine) as session:
        agent = agent_row(session, agent_name)
        numbers = version_numbers(session, agent)
        mine = Deployment.agent_id == agent.id
        total = session.exec(select(func.count()).select_from(Deployment).where(mine)).one()
        deployments = session.exec(
            select(Deployment)
            .where(mine)
            .order_by(col(Deployment.id).desc())
            .offset(offset)
            .limit(limit)
        ).all()
        return Page(
            tuple(deployment_info(agent, d, numbers) for d in deployments), total, offset, limit
        )


def active_version(agent_name: str, *, session: Session) -> tuple[VersionInfo, VersionSpec]:
    """The version new runs of the agent use, and its spec (cached per version).

    This is the runtime's entry point, which acts as the system and holds no role; people read
    versions through ``list_versions`` and ``show_version``.

    Raises:
        NotFound: no such agent, or it has no active version yet.
    """
    agent = agent_row(session, agent_name)
    if agent.active_version_id is None:
        raise NotFound(
            f"{agent_name} has no active version; create one and activate it "
            f"(steward versions activate {agent_name} N)."
        )
    version = session.get(AgentVersion, agent.active_version_id)
    if version is None:  # pragma: no cover - only a version of this agent is ever activated
        raise NotFound(f"the active version of {agent_name} no longer exists.")
    spec = load_spec(row_id(version), version.spec, content_hash=version.content_hash)
    return version_info(agent, version), spec


def move_pointer(
    session: Session,
    actor: Actor,
    *,
    agent: Agent,
    version: AgentVersion,
    action: DeploymentAction,
    reason: str,
    audit: dict[str, Any] | None = None,
) -> DeploymentInfo:
    deployment = Deployment(
        agent_id=row_id(agent),
        action=action,
        from_version_id=agent.active_version_id,
        to_version_id=row_id(version),
        actor=actor.name,
        reason=reason,
    )
    agent.active_version_id = version.id
    session.add_all([deployment, agent])
    session.flush()
    numbers = version_numbers(session, agent)
    info = deployment_info(agent, deployment, numbers)
    append_event(
        session,
        actor=actor.name,
        action=f"version.{action.value}",
        target_type="agent",
        target_id=agent.name,
        payload={
            "from": info.from_number,
            "to": info.to_number,
            "reason": reason,
            "deployment_id": info.id,
            **(audit or {}),
        },
    )
    return info


def _check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidInput("a reason is required: say why the active version changes.")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is limited to {MAX_REASON} characters.")
    return reason
