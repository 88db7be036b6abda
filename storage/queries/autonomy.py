"""KPIs that calibrate autonomy: where people's reviews change outcomes, and where they do not.

- **Per rule** (agent, version, rule): how the reviews it raised ended (approved, edited,
  rejected, overridden, expired) and how fast people decided; a rule whose escalations people
  approve nearly always, over enough decisions, is a candidate for auto-allow (``steward policy
  suggest`` checks such a change by replay).
- **Per reviewer**: decisions by kind, time to decision, and *rubber stamps*: high-risk calls
  (irreversible, or a write with at least $100 at stake: ``risk >= 1100``) approved within a few
  seconds of being raised, too fast to have read the evidence.
- **Held back**: what reviews stopped: the money in refused calls (an ``amount`` argument of a
  rejected or expired call, and what an edit took off the proposed amount) and the number of
  side-effecting calls that never ran, by tool.

Counts and percentiles are computed by the database (``GROUP BY``); only the refused and edited
reviews' arguments are read to add up amounts, since JSON paths differ between SQLite and
PostgreSQL and those reviews are a small share of all.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, col

from storage.enums import DecisionKind, ReviewStatus
from storage.models import Agent, AgentVersion, Review, ReviewDecision
from storage.queries.kpi_sections import Scope, rate, round_or_none
from storage.queries.stats import dialect_of, percentiles, seconds_between

AUTO_ALLOW_MIN_DECISIONS = 20
AUTO_ALLOW_MIN_SHARE = 0.95
HIGH_RISK = 1100
RUBBER_STAMP_S = 5.0
SIDE_EFFECT_RISK = 1000  # escalation.py scores reads below 1000, writes from 1000
MAX_EXAMPLES = 50
SYSTEM_ACTORS = ("system",)

RULE_COLUMNS = [
    "agent",
    "version",
    "rule_id",
    "reviews",
    "decided",
    "approve_rate",
    "edit_rate",
    "reject_rate",
    "override_rate",
    "expire_rate",
    "median_decision_s",
    "auto_allow_candidate",
]
REVIEWER_COLUMNS = [
    "reviewer",
    "decisions",
    "approved",
    "edited",
    "rejected",
    "overridden",
    "median_decision_s",
    "p95_decision_s",
    "rubber_stamps",
]
STAMP_COLUMNS = ["review_id", "run_id", "reviewer", "tool", "risk", "decided_in_s"]
HELD_COLUMNS = ["tool", "rejected", "expired", "edited_down", "amount_held_usd"]
_ENDED = {
    ReviewStatus.APPROVED: "approve",
    ReviewStatus.EDITED: "edit",
    ReviewStatus.REJECTED: "reject",
    ReviewStatus.OVERRIDDEN: "override",
    ReviewStatus.EXPIRED: "expire",
}


@dataclass
class AutonomyReport:
    """The three views, as tables ready to show and to export."""

    rules: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RULE_COLUMNS))
    reviewers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REVIEWER_COLUMNS))
    rubber_stamps: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STAMP_COLUMNS))
    held_back: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HELD_COLUMNS))
    thresholds: dict[str, Any] = field(default_factory=dict)

    @property
    def money_held_usd(self) -> float:
        return float(self.held_back["amount_held_usd"].sum()) if len(self.held_back) else 0.0

    @property
    def calls_held(self) -> int:
        if not len(self.held_back):
            return 0
        return int(self.held_back["rejected"].sum() + self.held_back["expired"].sum())

    def as_dict(self) -> dict[str, Any]:
        return {
            "rules": self.rules.to_dict(orient="records"),
            "reviewers": self.reviewers.to_dict(orient="records"),
            "rubber_stamps": self.rubber_stamps.to_dict(orient="records"),
            "held_back": self.held_back.to_dict(orient="records"),
            "money_held_usd": round(self.money_held_usd, 2),
            "calls_held": self.calls_held,
            "thresholds": self.thresholds,
        }


def autonomy_kpis(
    scope: Scope, *, session: Session, min_decisions: int, min_share: float
) -> AutonomyReport:
    """The autonomy report over the reviews raised in ``scope``.

    Args:
        scope: the production reviews to read.
        session: an open session.
        min_decisions: decisions a rule needs before it can be an auto-allow candidate.
        min_share: the approval share that makes it one.
    """
    stamps = _rubber_stamps(scope, session=session)
    return AutonomyReport(
        rules=_rules(scope, session=session, min_decisions=min_decisions, min_share=min_share),
        reviewers=_reviewers(scope, session=session, stamps=stamps),
        rubber_stamps=stamps,
        held_back=_held_back(scope, session=session),
        thresholds={
            "auto_allow_min_decisions": min_decisions,
            "auto_allow_min_share": min_share,
            "high_risk": HIGH_RISK,
            "rubber_stamp_s": RUBBER_STAMP_S,
        },
    )


def _rules(scope: Scope, *, session: Session, min_decisions: int, min_share: float) -> pd.DataFrame:
    rule = sa.func.coalesce(col(Review.rule_id), "(no rule)")
    rows = session.execute(
        sa.select(
            col(Agent.name),
            col(AgentVersion.number),
            col(Review.version_id),
            rule,
            col(Review.status),
            sa.func.count(),
        )
        .join(Agent, col(Agent.id) == col(Review.agent_id))
        .join(AgentVersion, col(AgentVersion.id) == col(Review.version_id))
        .where(*scope.reviews)
        .group_by(
            col(Agent.name),
            col(AgentVersion.number),
            col(Review.version_id),
            rule,
            col(Review.status),
        )
    ).all()
    waited = seconds_between(col(Review.decided_at), col(Review.created_at), dialect_of(session))
    medians = percentiles(
        sa.select(
            waited.label("value"),
            (rule + sa.literal(":") + sa.cast(col(Review.version_id), sa.String)).label("grp"),
        ).where(*scope.reviews, col(Review.decided_at).is_not(None)),
        (0.5,),
        session=session,
    )
    groups: dict[tuple[str, int, int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for agent, number, version_id, rule_id, status, count in rows:
        groups[(agent, number, version_id, rule_id)][ReviewStatus(status).value] += int(count)
    records = []
    for (agent, number, version_id, rule_id), counts in sorted(groups.items()):
        ended = {kind: counts.get(status.value, 0) for status, kind in _ENDED.items()}
        decided = sum(ended.values())
        approve_rate = rate(ended["approve"], decided)
        records.append(
            {
                "agent": agent,
                "version": number,
                "rule_id": rule_id,
                "reviews": sum(counts.values()),
                "decided": decided,
                **{f"{kind}_rate": rate(n, decided) for kind, n in ended.items()},
                "median_decision_s": round_or_none(
                    medians.get(f"{rule_id}:{version_id}", {}).get(0.5)
                ),
                "auto_allow_candidate": decided >= min_decisions
                and approve_rate is not None
                and approve_rate >= min_share,
            }
        )
    return pd.DataFrame(records, columns=RULE_COLUMNS)


def _decisions_in_scope(scope: Scope) -> tuple[Any, ...]:
    return (
        *scope.reviews,
        col(ReviewDecision.actor).not_in(SYSTEM_ACTORS),
        col(ReviewDecision.decision) != DecisionKind.EXPIRE,
    )


def _reviewers(scope: Scope, *, session: Session, stamps: pd.DataFrame) -> pd.DataFrame:
    rows = session.execute(
        sa.select(col(ReviewDecision.actor), col(ReviewDecision.decision), sa.func.count())
        .join(Review, col(Review.id) == col(ReviewDecision.review_id))
        .where(*_decisions_in_scope(scope))
        .group_by(col(ReviewDecision.actor), col(ReviewDecision.decision))
    ).all()
    waited = seconds_between(
        col(ReviewDecision.created_at), col(Review.created_at), dialect_of(session)
    )
    waits = percentiles(
        sa.select(waited.label("value"), col(ReviewDecision.actor).label("grp"))
        .join(Review, col(Review.id) == col(ReviewDecision.review_id))
        .where(*_decisions_in_scope(scope)),
        (0.5, 0.95),
        session=session,
    )
    by_actor: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for actor, decision, count in rows:
        by_actor[actor][DecisionKind(decision).value] += int(count)
    stamped = stamps["reviewer"].value_counts().to_dict() if len(stamps) else {}
    records = [
        {
            "reviewer": actor,
            "decisions": sum(kinds.values()),
            "approved": kinds.get("approve", 0),
            "edited": kinds.get("edit", 0),
            "rejected": kinds.get("reject", 0),
            "overridden": kinds.get("override", 0),
            "median_decision_s": round_or_none(waits.get(actor, {}).get(0.5)),
            "p95_decision_s": round_or_none(waits.get(actor, {}).get(0.95)),
            "rubber_stamps": int(stamped.get(actor, 0)),
        }
        for actor, kinds in sorted(by_actor.items(), key=lambda item: -sum(item[1].values()))
    ]
    return pd.DataFrame(records, columns=REVIEWER_COLUMNS)


def _rubber_stamps(scope: Scope, *, session: Session) -> pd.DataFrame:
    waited = seconds_between(
        col(ReviewDecision.created_at), col(Review.created_at), dialect_of(session)
    )
    rows = session.execute(
        sa.select(
            col(Review.id),
            col(Review.run_id),
            col(ReviewDecision.actor),
            col(Review.tool),
            col(Review.risk),
            waited,
        )
        .join(Review, col(Review.id) == col(ReviewDecision.review_id))
        .where(
            *_decisions_in_scope(scope),
            col(ReviewDecision.decision) == DecisionKind.APPROVE,
            col(Review.risk) >= HIGH_RISK,
            waited < RUBBER_STAMP_S,
        )
        .order_by(col(ReviewDecision.created_at).desc())
    ).all()
    return pd.DataFrame(
        [
            {
                "review_id": review_id,
                "run_id": run_id,
                "reviewer": actor,
                "tool": tool or "",
                "risk": risk,
                "decided_in_s": round(float(seconds), 1),
            }
            for review_id, run_id, actor, tool, risk, seconds in rows
        ],
        columns=STAMP_COLUMNS,
    )


def _held_back(scope: Scope, *, session: Session) -> pd.DataFrame:
    refused = session.execute(
        sa.select(col(Review.tool), col(Review.status), col(Review.args)).where(
            *scope.reviews,
            col(Review.status).in_((ReviewStatus.REJECTED, ReviewStatus.EXPIRED)),
            col(Review.risk) >= SIDE_EFFECT_RISK,
        )
    ).all()
    edits = session.execute(
        sa.select(col(Review.tool), col(Review.args), col(ReviewDecision.args))
        .join(ReviewDecision, col(ReviewDecision.review_id) == col(Review.id))
        .where(*scope.reviews, col(ReviewDecision.decision) == DecisionKind.EDIT)
    ).all()
    tools: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for tool, status, args in refused:
        held = tools[tool or "(no tool)"]
        held["rejected" if ReviewStatus(status) is ReviewStatus.REJECTED else "expired"] += 1
        held["amount_held_usd"] += _amount(args) or 0.0
    for tool, proposed, edited in edits:
        before, after = _amount(proposed), _amount(edited)
        if before is not None and after is not None and after < before:
            held = tools[tool or "(no tool)"]
            held["edited_down"] += 1
            held["amount_held_usd"] += before - after
    return pd.DataFrame(
        [
            {
                "tool": tool,
                "rejected": int(held.get("rejected", 0)),
                "expired": int(held.get("expired", 0)),
                "edited_down": int(held.get("edited_down", 0)),
                "amount_held_usd": round(held.get("amount_held_usd", 0.0), 2),
            }
            for tool, held in sorted(tools.items())
        ],
        columns=HELD_COLUMNS,
    )


def _amount(args: Any) -> float | None:
    """The call's ``amount`` argument when it is a number."""
    if not isinstance(args, dict):
        return None
    amount = args.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return None
    return float(amount)
