"""Deciding one review: approve, edit and approve, reject, override a block.

Each decision is a compare-and-set on the review row (open status, and the row version the
person saw), so of two concurrent decisions exactly one applies and the other gets a
``DecisionConflict`` naming who decided. A decision never runs the call itself: it makes the run
claimable, and the worker decides the call again at the gate and executes it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from agent.actors import Actor
from agent.binding import args_hash
from agent.calls import Effect
from agent.errors import DecisionConflict, InvalidInput, NotFound
from agent.platform import Platform
from agent.reviews.edits import checked_output, dry_run, parse_edited_args, refusal
from agent.reviews.permissions import check_permission
from storage.audit import append_event
from storage.engine import write_session
from storage.enums import DecisionKind, ReviewKind, ReviewStatus, RunStatus
from storage.models import Review, ReviewDecision, Run
from storage.types import utcnow

_RESULT_STATUS = {
    DecisionKind.APPROVE: ReviewStatus.APPROVED,
    DecisionKind.EDIT: ReviewStatus.EDITED,
    DecisionKind.REJECT: ReviewStatus.REJECTED,
    DecisionKind.OVERRIDE: ReviewStatus.OVERRIDDEN,
    DecisionKind.EXPIRE: ReviewStatus.EXPIRED,
}
# Kinds of review whose approval lets a tool call through (the others confirm an outcome or
# accept an answer).
_CALL_REVIEWS = (ReviewKind.ESCALATION, ReviewKind.BLOCK)


@dataclass(frozen=True)
class DecisionResult:
    """What a decision did.

    Attributes:
        review_id: the review decided.
        status: its status now.
        decided_by: who decided.
        run_id: the review's run.
        run_resumes: whether the run became claimable (no review of it is open any more).
        new_review_id: the next tier's review, when an SLA expiry escalated it.
        note: what the person should know: the policy would now refuse the call they approved
            (it will not execute unless a permitted role overrides the deny), say.
    """

    review_id: int
    status: ReviewStatus
    decided_by: str
    run_id: int
    run_resumes: bool
    new_review_id: int | None = None
    note: str | None = None


def approve(
    platform: Platform,
    actor: Actor,
    review_id: int,
    *,
    reason: str = "",
    seen_version: int | None = None,
) -> DecisionResult:
    """Authorize the bound call as proposed (or accept the output, or confirm it happened)."""
    return decide(
        platform, actor, review_id, DecisionKind.APPROVE, reason=reason, seen_version=seen_version
    )


def edit_and_approve(
    platform: Platform,
    actor: Actor,
    review_id: int,
    args: Any,
    *,
    reason: str = "",
    seen_version: int | None = None,
) -> DecisionResult:
    """Authorize the call with corrected arguments, tried on the gate before it is recorded."""
    return decide(
        platform,
        actor,
        review_id,
        DecisionKind.EDIT,
        reason=reason,
        args=args,
        seen_version=seen_version,
    )


def reject(
    platform: Platform,
    actor: Actor,
    review_id: int,
    reason: str,
    *,
    seen_version: int | None = None,
) -> DecisionResult:
    """Refuse the call; the planner receives ``reason`` and may adapt."""
    return decide(
        platform, actor, review_id, DecisionKind.REJECT, reason=reason, seen_version=seen_version
    )


def override(
    platform: Platform,
    actor: Actor,
    review_id: int,
    reason: str,
    *,
    seen_version: int | None = None,
) -> DecisionResult:
    """Let a blocked call through; only the roles its rule names, with a justification."""
    return decide(
        platform, actor, review_id, DecisionKind.OVERRIDE, reason=reason, seen_version=seen_version
    )


def decide(
    platform: Platform,
    actor: Actor,
    review_id: int,
    kind: DecisionKind,
    *,
    reason: str = "",
    args: Any = None,
    seen_version: int | None = None,
) -> DecisionResult:
    """Apply one human decision.

    Raises:
        Forbidden: the actor's roles do not allow it.
        InvalidInput: a rejection or override without a reason, or an edit the gate refuses.
        NotFound: no such review.
        DecisionConflict: someone decided it first, or it changed since ``seen_version``.
        On any of them nothing was changed.
    """
    reason = (reason or "").strip()
    with write_session(platform.engine) as session:
        review = session.get(Review, review_id)
        if review is None:
            raise NotFound(f"review {review_id} does not exist.")
        check_permission(actor, review, kind)
        if kind in (DecisionKind.REJECT, DecisionKind.OVERRIDE) and not reason:
            what = "a rejection" if kind is DecisionKind.REJECT else "an override"
            raise InvalidInput(f"{what} needs a reason.")
        bound_args: dict[str, Any] | None = None
        note: str | None = None
        if kind is DecisionKind.EDIT and review.kind is ReviewKind.OUTPUT_INVALID:
            bound_args = checked_output(platform, session, review, args)
        elif kind is DecisionKind.EDIT:
            bound_args = parse_edited_args(args)
            decision = dry_run(platform, session, review, bound_args, kind=kind, actor=actor.name)
            note = refusal(review, decision)
            if note is not None and decision.effect is Effect.DENY:
                raise InvalidInput(f"{note} Approval cannot lift a deny rule.")
        elif kind in (DecisionKind.APPROVE, DecisionKind.OVERRIDE) and review.kind in _CALL_REVIEWS:
            decision = dry_run(
                platform, session, review, review.args or {}, kind=kind, actor=actor.name
            )
            note = refusal(review, decision)
        compare_and_set(session, review, _RESULT_STATUS[kind], actor.name, seen_version)
        return record(session, review, kind, actor, reason, bound_args, note=note)


def compare_and_set(
    session: Session, review: Review, status: ReviewStatus, actor: str, seen_version: int | None
) -> None:
    """Move an open review to ``status`` only if nobody decided it (or changed it since
    ``seen_version``) first.

    Raises:
        DecisionConflict: naming who decided it, and when, or saying it changed.
    """
    statement = (
        sa.update(Review)
        .where(col(Review.id) == review.id)
        .where(col(Review.status).in_(ReviewStatus.open_statuses()))
        .values(
            status=status,
            decided_by=actor,
            decided_at=utcnow(),
            row_version=col(Review.row_version) + 1,
        )
    )
    if seen_version is not None:
        statement = statement.where(col(Review.row_version) == seen_version)
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        session.expire(review)
        current = session.get(Review, review.id)
        assert current is not None
        if current.status.is_open:
            raise DecisionConflict(
                f"review {review.id} changed since you opened it (now tier {current.tier}); "
                "reload it and decide again.",
                decided_by=None,
                status=current.status.value,
            )
        raise DecisionConflict(
            f"review {review.id} was already {current.status.value} by "
            f"{current.decided_by or 'the system'} at {_when(current.decided_at)}; nothing "
            "was changed.",
            decided_by=current.decided_by,
            status=current.status.value,
        )
    session.refresh(review)


def record(  # noqa: PLR0917 - internal, called with the decision's parts in order
    session: Session,
    review: Review,
    kind: DecisionKind,
    actor: Actor,
    reason: str,
    args: dict[str, Any] | None,
    *,
    new_review: Review | None = None,
    note: str | None = None,
) -> DecisionResult:
    """Store the decision and its audit event, and resume the run if nothing else is open."""
    assert review.id is not None
    bound_hash = args_hash(args) if args is not None else None
    session.add(
        ReviewDecision(
            review_id=review.id,
            decision=kind,
            actor=actor.name,
            reason=reason,
            args=args,
            args_hash=bound_hash,
        )
    )
    append_event(
        session,
        actor=actor.name,
        action=f"review.{kind.value}",
        target_type="review",
        target_id=review.id,
        payload={
            "run_id": review.run_id,
            "tool": review.tool,
            "rule_id": review.rule_id,
            "reason": reason,
            "args_hash": bound_hash,
            "tier": review.tier,
            "new_review_id": new_review.id if new_review is not None else None,
            "note": note,
        },
    )
    resumes = new_review is None and _resume_if_clear(session, review.run_id)
    return DecisionResult(
        review_id=review.id,
        status=review.status,
        decided_by=actor.name,
        run_id=review.run_id,
        run_resumes=resumes,
        new_review_id=new_review.id if new_review is not None else None,
        note=note,
    )


def _resume_if_clear(session: Session, run_id: int) -> bool:
    """Make the run claimable when none of its reviews is still open."""
    still_open = session.exec(
        select(Review.id)
        .where(col(Review.run_id) == run_id)
        .where(col(Review.status).in_(ReviewStatus.open_statuses()))
        .limit(1)
    ).first()
    if still_open is not None:
        return False
    # Locked, so a worker parking the run at this moment waits for this decision and then sees
    # that nothing is left open (see the runtime's park).
    run = session.get(Run, run_id, with_for_update=True)
    if run is None or run.status is not RunStatus.WAITING_REVIEW:
        return False
    run.status = RunStatus.READY  # the task stays waiting_review until a worker claims the run
    session.add(run)
    return True


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "an unknown time"
