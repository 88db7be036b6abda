"""Policy replay: what a candidate policy would have decided on the calls an agent proposed.

Every policy decision records what it read (see ``agent/runtime/session.py``'s guardrail step):
the arguments, the task fields, the run's figures, the facts and counters. A replay evaluates the
candidate's compiled policy on those recorded variables, in the order the calls were proposed,
purely from stored rows: no tool, fact provider or model is called. A recorded decision the
candidate cannot be evaluated on (it reads a fact or counter the original rules did not, or the
decision predates decision records) is reported as undecidable, with the reason, never guessed.

The report says which decisions flip, grouped by (from, to, rule, tool, version) with runs as
examples; what it would mean for the review queue at the reviewers' observed pace; which past
human decisions it contradicts; and which executed calls it would now deny. It is saved, and
attached to the candidate version when the candidate is one.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from agent.actors import READ_ROLES, Actor, require
from agent.errors import InvalidInput, NotFound
from agent.mediation.policy import CompiledPolicy
from agent.platform import Platform
from agent.release.history import History, decide, recorded_decisions
from agent.release.report import Contradiction, FlipKey, ReplayReport, grouped_flips
from agent.versions.document import parse_version
from agent.versions.rows import agent_row
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import ReviewStatus, Role, ToolCallStatus
from storage.models import (
    Agent,
    AgentVersion,
    PolicyReplay,
    Review,
    Run,
    ToolCall,
)
from storage.types import utcnow

REPLAY_ROLES = frozenset({Role.ENGINEER, Role.MANAGER})
"""Who runs a replay (it reads every decision of an agent, and saves a report)."""
MAX_WINDOW = timedelta(days=365)
_APPROVED = (ReviewStatus.APPROVED, ReviewStatus.EDITED, ReviewStatus.OVERRIDDEN)


def replay_policy(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    candidate_version: int | None = None,
    candidate_yaml: str | None = None,
    since: timedelta = timedelta(days=30),
    now: datetime | None = None,
) -> ReplayReport:
    """Replay a candidate's policy (a stored version's, or a version document's) on the agent's
    production decisions of the last ``since``, save the report and return it.

    Raises:
        Forbidden: the actor is neither an engineer nor a manager.
        NotFound: no such agent or version.
        InvalidInput: not exactly one candidate, or a window that is not positive or is longer
            than a year.
        VersionSpecError: the candidate document is not a valid version (line named).
    """
    require(actor, REPLAY_ROLES, f"replay a policy on {agent_name!r}")
    if (candidate_version is None) == (candidate_yaml is None):
        raise InvalidInput("name one candidate: a version number or a version document.")
    if not timedelta(0) < since <= MAX_WINDOW:
        raise InvalidInput("the replay window is more than nothing and at most 365 days.")
    until = now or utcnow()
    start = until - since
    with read_session(platform.engine) as session:
        agent = agent_row(session, agent_name)
        assert agent.id is not None
        if candidate_version is not None:
            version_row = session.exec(
                select(AgentVersion)
                .where(col(AgentVersion.agent_id) == agent.id)
                .where(col(AgentVersion.number) == candidate_version)
            ).first()
            if version_row is None or version_row.id is None:
                raise NotFound(f"agent {agent_name!r} has no version {candidate_version}.")
            policy = platform.versions.get(version_row.id).policy
            label = f"version {candidate_version}"
            version_id: int | None = version_row.id
        else:
            parsed = parse_version(str(candidate_yaml), registry=platform.registry)
            policy = CompiledPolicy(parsed.spec.policy)
            label = f"document (policy {policy.hash[:12]})"
            version_id = None
        report = replay_on(session, agent, policy, label, candidate_version, start, until)
    with write_session(platform.engine) as session:
        row = PolicyReplay(
            agent_id=agent.id,
            version_id=version_id,
            candidate=label,
            candidate_policy_hash=policy.hash,
            since=start,
            until=until,
            flipped=report.flipped,
            report=report.as_dict(),
            created_by=actor.name,
        )
        session.add(row)
        session.flush()
        append_event(
            session,
            actor=actor.name,
            action="policy.replay",
            target_type="agent",
            target_id=agent.id,
            payload={
                "replay_id": row.id,
                "candidate": label,
                "policy_hash": policy.hash,
                "decisions": report.decisions,
                "flipped": report.flipped,
            },
        )
        saved_id, created_at = row.id, row.created_at
    return ReplayReport(
        **{
            **report.__dict__,
            "id": saved_id,
            "created_by": actor.name,
            "created_at": created_at,
        }
    )


def list_replays(
    platform: Platform, actor: Actor, agent_name: str, *, version: int | None = None
) -> tuple[ReplayReport, ...]:
    """Saved replays of an agent (of one candidate version, if given), newest first."""
    require(actor, READ_ROLES, f"read the policy replays of {agent_name!r}")
    with read_session(platform.engine) as session:
        agent = agent_row(session, agent_name)
        query = select(PolicyReplay).where(col(PolicyReplay.agent_id) == agent.id)
        if version is not None:
            version_id = session.exec(
                select(AgentVersion.id)
                .where(col(AgentVersion.agent_id) == agent.id)
                .where(col(AgentVersion.number) == version)
            ).first()
            if version_id is None:
                raise NotFound(f"agent {agent_name!r} has no version {version}.")
            query = query.where(col(PolicyReplay.version_id) == version_id)
        rows = session.exec(query.order_by(col(PolicyReplay.id).desc()).limit(50)).all()
    return tuple(
        ReplayReport.from_dict(
            {
                **row.report,
                "id": row.id,
                "created_by": row.created_by,
                "created_at": row.created_at.isoformat(),
            }
        )
        for row in rows
    )


def replay_on(  # noqa: PLR0917 - the replay's parts in order
    session: Session,
    agent: Agent,
    policy: CompiledPolicy,
    label: str,
    candidate_version: int | None,
    start: datetime,
    until: datetime,
) -> ReplayReport:
    """The report of ``policy`` replayed on ``agent``'s decisions between ``start`` and
    ``until``, on the caller's session, saving nothing (the caller checked who asks)."""
    decisions, before_policy = recorded_decisions(session, agent, start, until)
    history = History(session, agent)
    reviews = _people(session, {d.run_id for d in decisions})
    executed = _executed(session, {d.run_id for d in decisions})
    undecidable: Counter[str] = Counter()
    flips: dict[FlipKey, list[int]] = defaultdict(list)
    by_effect: dict[str, Counter[str]] = {"recorded": Counter(), "candidate": Counter()}
    contradictions: list[Contradiction] = []
    now_denied: list[dict[str, Any]] = []
    unchanged = 0
    for decision in decisions:
        outcome = decide(policy, decision, history)
        if isinstance(outcome, str):
            undecidable[outcome] += 1
            continue
        effect, rule_id = outcome
        by_effect["recorded"][decision.recorded] += 1
        by_effect["candidate"][effect] += 1
        if effect == decision.recorded:
            unchanged += 1
        else:
            key = (decision.recorded, effect, rule_id, decision.tool, decision.version)
            flips[key].append(decision.run_id)
        review = reviews.get((decision.run_id, decision.call_id))
        if review is not None and review.decided_by:
            person_allowed = review.status in _APPROVED
            if (person_allowed and effect == "deny") or (
                review.status is ReviewStatus.REJECTED and effect == "allow"
            ):
                contradictions.append(
                    Contradiction(
                        run_id=decision.run_id,
                        review_id=review.id or 0,
                        tool=decision.tool,
                        person=review.decided_by,
                        decided=review.status.value,
                        candidate=effect,
                        rule_id=rule_id,
                    )
                )
        if effect == "deny" and (decision.run_id, decision.call_id) in executed:
            now_denied.append(
                {
                    "run_id": decision.run_id,
                    "call_id": decision.call_id,
                    "tool": decision.tool,
                    "rule_id": rule_id,
                }
            )
    days = max((until - start).total_seconds() / 86400.0, 1 / 24)
    return ReplayReport(
        agent=agent.name,
        candidate=label,
        candidate_version=candidate_version,
        candidate_policy_hash=policy.hash,
        since=start,
        until=until,
        decisions=len(decisions),
        replayed=len(decisions) - sum(undecidable.values()),
        unchanged=unchanged,
        flips=grouped_flips(flips),
        undecidable=dict(undecidable),
        contradictions=tuple(contradictions),
        executed_now_denied=tuple(now_denied),
        queue=_queue(session, agent, by_effect, start, until, days),
        by_effect={k: dict(v) for k, v in by_effect.items()},
        refused_before_policy=before_policy,
    )


def _people(session: Session, run_ids: set[int]) -> dict[tuple[int, str], Review]:
    if not run_ids:
        return {}
    reviews = session.exec(
        select(Review)
        .where(col(Review.run_id).in_(run_ids))
        .where(col(Review.decided_by).is_not(None))
        .order_by(col(Review.id))
    ).all()
    return {(r.run_id, str(r.call_id)): r for r in reviews if r.call_id is not None}


def _executed(session: Session, run_ids: set[int]) -> set[tuple[int, str]]:
    if not run_ids:
        return set()
    rows = session.exec(
        select(ToolCall.run_id, ToolCall.call_id)
        .where(col(ToolCall.run_id).in_(run_ids))
        .where(col(ToolCall.status) == ToolCallStatus.SUCCEEDED)
    ).all()
    return {(run_id, str(call_id)) for run_id, call_id in rows}


def _queue(  # noqa: PLR0917 - internal
    session: Session,
    agent: Agent,
    by_effect: Mapping[str, Counter[str]],
    start: datetime,
    until: datetime,
    days: float,
) -> dict[str, Any]:
    """Reviews per day today and under the candidate, against the pace people decided at."""
    decided = session.exec(
        select(Review.created_at, Review.decided_at)
        .join(Run, col(Run.id) == col(Review.run_id))
        .where(col(Review.agent_id) == agent.id)
        .where(col(Run.eval_run_id).is_(None))
        .where(col(Review.decided_at).is_not(None))
        .where(col(Review.decided_by).is_not(None))
        .where(col(Review.created_at) >= start)
        .where(col(Review.created_at) <= until)
    ).all()
    waits = [
        (decided_at - created_at).total_seconds() / 60.0
        for created_at, decided_at in decided
        if decided_at is not None
    ]
    # A person sees an escalation, and a deny someone may override, as a review.
    today = by_effect["recorded"]["escalate"] / days
    projected = by_effect["candidate"]["escalate"] / days
    pace = len(decided) / days
    return {
        "window_days": round(days, 2),
        "escalations_per_day": round(today, 2),
        "projected_escalations_per_day": round(projected, 2),
        # Positive: reviews people would no longer see each day; negative: more to see.
        "reviews_saved_per_day": round(today - projected, 2),
        "decisions_per_day": round(pace, 2),
        "median_minutes_to_decide": round(statistics.median(waits), 1) if waits else None,
        "projected_load": round(projected / pace, 2) if pace else None,
    }
