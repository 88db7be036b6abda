"""Policy suggestions from review history: where people approve nearly everything a rule sends
them, propose letting more through, checked by replay.

For each escalation rule of the agent's active version, the people's decisions on the reviews it
raised in the window are counted. A rule approved at least ``min_share`` of the time over at least
``min_decisions`` decisions is a candidate. When its condition has a numeric lower bound on an
argument (``args.amount > 100.0``) and an allow rule of the same tool has the matching upper
bound (``args.amount <= 100.0``), the suggestion moves both to the largest value people
approved below every value they rejected. The candidate policy is then replayed on the recorded
decisions (nothing is called): it is suggested only if it would have auto-allowed no call a
person rejected, and the report says how many reviews it saves. A suggestion is a proposal shown
to engineers; nothing changes without a new version through the activation gate.

A rule whose condition has no such bound is reported with its approval figures and no proposed
change: moving it is a judgement for a person, and this module does not guess one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import yaml
from sqlmodel import col, select

from agent.actors import Actor, require
from agent.errors import InvalidInput, NotFound
from agent.mediation.policy import CompiledPolicy
from agent.platform import Platform
from agent.release.replay import REPLAY_ROLES, replay_on
from agent.spec import VersionSpec
from agent.versions.rows import agent_row
from storage.engine import read_session
from storage.enums import ReviewKind, ReviewStatus
from storage.models import AgentVersion, Review, Run
from storage.queries.autonomy import AUTO_ALLOW_MIN_DECISIONS, AUTO_ALLOW_MIN_SHARE
from storage.types import utcnow

# One definition of "people nearly always approve it", shared with the KPI page's candidates.
DEFAULT_MIN_DECISIONS = AUTO_ALLOW_MIN_DECISIONS
DEFAULT_MIN_SHARE = AUTO_ALLOW_MIN_SHARE
_APPROVED = (ReviewStatus.APPROVED, ReviewStatus.EDITED)


@dataclass(frozen=True)
class Suggestion:
    """What review history says of one escalation rule, and the change it supports, if any."""

    rule_id: str
    tool: str
    decisions: int
    approved: int
    proposal: str | None
    argument: str | None = None
    bound_from: float | None = None
    bound_to: float | None = None
    reviews_saved: int = 0
    reviews_saved_per_day: float = 0.0
    rejections_allowed: int = 0
    candidate_yaml: str | None = None

    @property
    def approval_share(self) -> float:
        return self.approved / self.decisions if self.decisions else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "approval_share": round(self.approval_share, 4)}


def policy_suggestions(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    since: timedelta = timedelta(days=30),
    min_decisions: int = DEFAULT_MIN_DECISIONS,
    min_share: float = DEFAULT_MIN_SHARE,
    now: datetime | None = None,
) -> tuple[Suggestion, ...]:
    """Suggestions for the agent's active version, one per escalation rule people approved at
    least ``min_share`` of the time over at least ``min_decisions`` decisions.

    Raises:
        Forbidden: the actor is neither an engineer nor a manager.
        NotFound: no such agent, or it has no active version.
        InvalidInput: thresholds or window out of range.
    """
    require(actor, REPLAY_ROLES, f"read policy suggestions for {agent_name!r}")
    if not 1 <= min_decisions <= 100_000 or not 0.5 <= min_share <= 1.0:
        raise InvalidInput("min_decisions is 1 to 100000 and min_share 0.5 to 1.")
    if not timedelta(0) < since <= timedelta(days=365):
        raise InvalidInput("the window is more than nothing and at most 365 days.")
    until = now or utcnow()
    start = until - since
    with read_session(platform.engine) as session:
        agent = agent_row(session, agent_name)
        active = session.get(AgentVersion, agent.active_version_id or 0)
        if active is None:
            raise NotFound(f"agent {agent_name!r} has no active version.")
        spec = VersionSpec.from_document(active.spec)
        decided = session.exec(
            select(Review)
            .join(Run, col(Run.id) == col(Review.run_id))
            .where(col(Review.agent_id) == agent.id)
            .where(col(Run.eval_run_id).is_(None))
            .where(col(Review.kind) == ReviewKind.ESCALATION)
            .where(col(Review.decided_by).is_not(None))
            .where(col(Review.status).in_((*_APPROVED, ReviewStatus.REJECTED)))
            .where(col(Review.created_at) >= start)
            .where(col(Review.created_at) <= until)
        ).all()
        suggestions = []
        for rule in spec.policy.rules:
            if rule.effect.value != "escalate" or rule.shadow:
                continue
            reviews = [r for r in decided if r.rule_id == rule.id]
            approved = [r for r in reviews if r.status in _APPROVED]
            if len(reviews) < min_decisions or len(approved) < min_share * len(reviews):
                continue
            base = Suggestion(rule.id, rule.tool, len(reviews), len(approved), proposal=None)
            moved = _moved_bound(active.spec, rule.id, rule.tool, rule.when, reviews)
            if moved is None:
                suggestions.append(base)
                continue
            argument, old, new, document = moved
            candidate = CompiledPolicy(VersionSpec.from_document(document).policy)
            report = replay_on(session, agent, candidate, "suggestion", None, start, until)
            saved = sum(
                f.count
                for f in report.flips
                if f.from_effect == "escalate" and f.to_effect == "allow" and f.tool == rule.tool
            )
            rejected_allowed = sum(
                1 for c in report.contradictions if c.decided == ReviewStatus.REJECTED.value
            )
            days = max((until - start).total_seconds() / 86400.0, 1 / 24)
            suggestions.append(
                Suggestion(
                    rule.id,
                    rule.tool,
                    len(reviews),
                    len(approved),
                    proposal=(
                        f"let {rule.tool} through without review up to args.{argument} = "
                        f"{new:g} (now {old:g})"
                        if not rejected_allowed
                        else None
                    ),
                    argument=argument,
                    bound_from=old,
                    bound_to=new,
                    reviews_saved=saved,
                    reviews_saved_per_day=round(saved / days, 2),
                    rejections_allowed=rejected_allowed,
                    candidate_yaml=(
                        yaml.safe_dump(document, sort_keys=False) if not rejected_allowed else None
                    ),
                )
            )
    return tuple(suggestions)


_LOWER = re.compile(r"args\.([A-Za-z_]\w*)\s*>\s*([0-9]+(?:\.[0-9]+)?)")


def _moved_bound(
    document: Mapping[str, Any], rule_id: str, tool: str, when: str, reviews: list[Review]
) -> tuple[str, float, float, dict[str, Any]] | None:
    """The argument, its bound, the bound people's decisions support, and the version document
    with both the escalation rule's lower bound and the matching allow bound moved; None when
    the rule has no numeric lower bound or the decisions do not support a higher one."""
    found = _LOWER.search(when)
    if found is None:
        return None
    argument, old = found.group(1), float(found.group(2))
    approved = [_number(r.args, argument) for r in reviews if r.status in _APPROVED]
    rejected = [_number(r.args, argument) for r in reviews if r.status is ReviewStatus.REJECTED]
    ceiling = min((v for v in rejected if v is not None), default=None)
    supported = [
        v for v in approved if v is not None and v > old and (ceiling is None or v < ceiling)
    ]
    if not supported:
        return None
    new = max(supported)
    changed = _with_bound(document, rule_id, tool, argument, old=old, new=new)
    return argument, old, new, changed


def _with_bound(
    document: Mapping[str, Any], rule_id: str, tool: str, argument: str, *, old: float, new: float
) -> dict[str, Any]:
    """The version document with ``args.<argument> > old`` of rule ``rule_id`` and the same
    tool's allow bound ``args.<argument> <= old`` moved to ``new``."""
    copy: dict[str, Any] = yaml.safe_load(yaml.safe_dump(dict(document)))
    number = r"([0-9]+(?:\.[0-9]+)?)"
    lower = re.compile(rf"args\.{argument}\s*>\s*{number}")
    upper = re.compile(rf"args\.{argument}\s*<=\s*{number}")

    def move(pattern: re.Pattern[str], operator: str, when: str) -> str:
        return pattern.sub(
            lambda m: f"args.{argument} {operator} {new!r}" if float(m.group(1)) == old else m[0],
            when,
        )

    for rule in copy["policy"]["rules"]:
        if rule.get("tool", "*") != tool or rule.get("shadow"):
            continue
        when = str(rule.get("when", "true"))
        if rule["id"] == rule_id:
            rule["when"] = move(lower, ">", when)
        elif rule["effect"] == "allow":
            rule["when"] = move(upper, "<=", when)
    return copy


def _number(args: Mapping[str, Any] | None, name: str) -> float | None:
    value = (args or {}).get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
