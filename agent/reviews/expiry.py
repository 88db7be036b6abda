"""The SLA clock: open reviews past their due time expire, to the next tier or to a rejection.

Expiry is recorded as ``expired``, never as ``rejected``; the rule says whether it escalates to
the next tier (a new review, bound to the same call) or ends the question.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from agent.actors import SYSTEM
from agent.errors import NotFound
from agent.platform import Platform
from agent.reviews.decide import compare_and_set, record
from storage.engine import write_session
from storage.enums import DecisionKind, ReviewKind, ReviewStatus
from storage.models import Review, Run
from storage.types import utcnow

DEFAULT_SLA_MINUTES = 60.0


def expire_overdue(platform: Platform, *, now: datetime | None = None, limit: int = 200) -> int:
    """Expire open reviews past their SLA: escalate to the next tier or reject, per the rule.
    An evaluation's reviews are its scripted reviewer's to answer (or let expire), never the
    production clock's.

    Returns:
        How many reviews expired.
    """
    moment = now or utcnow()
    with write_session(platform.engine) as session:
        overdue = session.exec(
            select(Review)
            .join(Run, col(Run.id) == col(Review.run_id))
            .where(col(Run.eval_run_id).is_(None))
            .where(col(Review.status).in_(ReviewStatus.open_statuses()))
            .where(col(Review.sla_due_at) < moment)
            .order_by(col(Review.sla_due_at))
            .limit(limit)
        ).all()
        for review in overdue:
            _expire_one(platform, session, review, moment)
    return len(overdue)


def expire_review(platform: Platform, review_id: int, *, now: datetime | None = None) -> bool:
    """Expire one open review at once, as if its SLA had passed (an evaluation's scripted
    reviewer lets a review expire this way). Returns whether it was open.

    Raises:
        NotFound: no such review.
    """
    moment = now or utcnow()
    with write_session(platform.engine) as session:
        review = session.get(Review, review_id)
        if review is None:
            raise NotFound(f"review {review_id} does not exist.")
        if not review.status.is_open:
            return False
        _expire_one(platform, session, review, moment)
    return True


def _expire_one(platform: Platform, session: Session, review: Review, moment: datetime) -> None:
    rules = platform.versions.get(review.version_id).spec.policy.rules
    rule = next((r for r in rules if r.id == review.rule_id), None)
    compare_and_set(session, review, ReviewStatus.EXPIRED, SYSTEM.name, None)
    child: Review | None = None
    if rule is not None and rule.on_expiry == "escalate" and review.tier < rule.max_tier:
        child = Review(
            run_id=review.run_id,
            agent_id=review.agent_id,
            version_id=review.version_id,
            parent_id=review.id,
            step_id=review.step_id,
            kind=review.kind,
            status=ReviewStatus.PENDING
            if review.kind is not ReviewKind.BLOCK
            else ReviewStatus.BLOCKED,
            call_id=review.call_id,
            tool=review.tool,
            args=review.args,
            args_hash=review.args_hash,
            policy_hash=review.policy_hash,
            rule_id=review.rule_id,
            reason=f"Tier {review.tier + 1}: {review.reason}",
            risk=review.risk,
            tier=review.tier + 1,
            override_roles=review.override_roles,
            approvals_required=review.approvals_required,  # the next tier starts a new count
            sla_due_at=moment + timedelta(minutes=rule.sla_minutes or DEFAULT_SLA_MINUTES),
        )
        session.add(child)
        review.applied_at = moment  # replaced by the next tier; the worker has nothing to apply
        session.add(review)
        session.flush()
    record(
        session,
        review,
        DecisionKind.EXPIRE,
        SYSTEM,
        "the SLA passed without a decision",
        None,
        new_review=child,
    )
