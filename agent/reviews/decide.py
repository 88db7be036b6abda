"""Deciding one review: approve, edit and approve, reject, override a block.

Each decision is a compare-and-set on the review row (open status, and the row version the
person saw), so of two concurrent decisions exactly one applies and the other gets a
``DecisionConflict`` naming who decided. A decision never runs the call itself: it makes the run
claimable, and the worker decides the call again at the gate and executes it once.

Under a four-eyes rule (``agent.reviews.quorum``) an approval short of the count is a
compare-and-set too: it adds its approver to the open review, and only the approval completing
the count closes it, so concurrent approvers neither lose a count nor let the call run twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from agent.actors import Actor
from agent.binding import args_hash
from agent.calls import Effect
from agent.errors import DecisionConflict, Forbidden, InvalidInput, NotFound
from agent.platform import Platform
from agent.reviews.edits import checked_output, dry_run, parse_edited_args, refusal
from agent.reviews.permissions import check_permission
from agent.reviews.quorum import Quorum
from storage.audit import append_event
from storage.engine import write_session
from storage.enums import DecisionKind, ReviewKind, ReviewStatus, RunStatus
from storage.models import Review, ReviewDecision, Run, Task
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
            (it will not execute unless a permitted role overrides the deny), say, or that the
            call waits for another person's approval.
        approved_by: under a four-eyes rule, who has approved the current arguments so far.
        approvals_required: how many distinct people must approve (1 without four-eyes).
    """

    review_id: int
    status: ReviewStatus
    decided_by: str
    run_id: int
    run_resumes: bool
    new_review_id: int | None = None
    note: str | None = None
    approved_by: tuple[str, ...] = ()
    approvals_required: int = 1

    @property
    def waiting_for_more(self) -> bool:
        """An approval was counted, and the call still waits for another person's."""
        return self.status.is_open


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
        Forbidden: the actor's roles do not allow it, or a four-eyes rule does not (the
            submitter of the task approving its call).
        InvalidInput: a rejection or override without a reason, an edit the gate refuses, or
            a second approval by the same person.
        NotFound: no such review.
        DecisionConflict: someone decided it first, or it changed since ``seen_version``.
        On any of them nothing was changed.
    """
    # Two approvers of a four-eyes review may count at the same moment: the one whose count
    # lost the compare-and-set reads the review again and counts on top of the other.
    for attempt in Retrying(
        retry=retry_if_exception_type(_CountRaced), stop=stop_after_attempt(10), reraise=True
    ):
        with attempt:
            return _decide_once(
                platform,
                actor,
                review_id,
                kind,
                reason=(reason or "").strip(),
                args=args,
                seen_version=seen_version,
            )
    raise AssertionError("unreachable: tenacity re-raises the last attempt's error")


class _CountRaced(DecisionConflict):
    """Another approval of the same open four-eyes review was counted first."""


def _decide_once(
    platform: Platform,
    actor: Actor,
    review_id: int,
    kind: DecisionKind,
    *,
    reason: str,
    args: Any,
    seen_version: int | None,
) -> DecisionResult:
    with write_session(platform.engine) as session:
        review = session.get(Review, review_id)
        if review is None:
            raise NotFound(f"review {review_id} does not exist.")
        check_permission(actor, review, kind)
        if kind in (DecisionKind.REJECT, DecisionKind.OVERRIDE) and not reason:
            what = "a rejection" if kind is DecisionKind.REJECT else "an override"
            raise InvalidInput(f"{what} needs a reason.")
        quorum = quorum_of(session, review)
        if review.status.is_open:
            refused = quorum.refusal(actor.name, kind)
            if refused is not None:
                if kind is DecisionKind.APPROVE and actor.name in quorum.approved_by:
                    raise InvalidInput(refused)
                raise Forbidden(refused)
        edited_before = _round_edit(session, review) if quorum.four_eyes else None
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
            current = edited_before if edited_before is not None else (review.args or {})
            decision = dry_run(platform, session, review, current, kind=kind, actor=actor.name)
            note = refusal(review, decision)
            # The approval binds the arguments of the edit it approves, so that the approval
            # completing the count carries them to the worker.
            bound_args = edited_before
        if quorum.four_eyes and kind in (DecisionKind.APPROVE, DecisionKind.EDIT):
            approved_by = quorum.after(actor.name, kind)
            if not quorum.completes(approved_by):
                count_approval(session, review, approved_by, seen_version)
                waiting = f"{quorum.describe(approved_by)}; the call waits for another approval."
                return record(
                    session,
                    review,
                    kind,
                    actor,
                    reason,
                    bound_args,
                    note=f"{note} {waiting}" if note else waiting,
                    quorum=quorum,
                )
            status = (
                ReviewStatus.EDITED
                if kind is DecisionKind.EDIT or edited_before is not None
                else ReviewStatus.APPROVED
            )
            compare_and_set(
                session,
                review,
                status,
                actor.name,
                seen_version,
                approved_by=list(approved_by),
                expected_version=review.row_version,
            )
            return record(
                session, review, kind, actor, reason, bound_args, note=note, quorum=quorum
            )
        compare_and_set(session, review, _RESULT_STATUS[kind], actor.name, seen_version)
        return record(session, review, kind, actor, reason, bound_args, note=note, quorum=quorum)


def quorum_of(session: Session, review: Review) -> Quorum:
    """The four-eyes count of ``review``, with who submitted its task."""
    assert review.id is not None
    run = session.get(Run, review.run_id)
    task = session.get(Task, run.task_id) if run is not None else None
    return Quorum.of(
        review.id,
        review.rule_id,
        review.kind,
        review.approvals_required,
        review.approved_by,
        submitted_by=task.submitted_by if task is not None else None,
        task_id=task.id if task is not None else None,
    )


def _round_edit(session: Session, review: Review) -> dict[str, Any] | None:
    """The arguments of the edit the current count approves (an edit restarts the count), or
    None when the count is of the arguments as proposed."""
    if not review.approved_by:
        return None
    last = session.exec(
        select(ReviewDecision)
        .where(col(ReviewDecision.review_id) == review.id)
        .where(col(ReviewDecision.decision) == DecisionKind.EDIT)
        .order_by(col(ReviewDecision.id).desc())
        .limit(1)
    ).first()
    return dict(last.args) if last is not None and last.args is not None else None


def count_approval(
    session: Session, review: Review, approved_by: tuple[str, ...], seen_version: int | None
) -> None:
    """Add an approval short of the count to the open review, if nobody changed it meanwhile;
    the review goes back to the pool for the next approver.

    Raises:
        DecisionConflict: it was decided, or changed since ``seen_version``.
        _CountRaced: another approval was counted first (the decision is tried again).
    """
    statement = (
        sa.update(Review)
        .where(col(Review.id) == review.id)
        .where(col(Review.status).in_(ReviewStatus.open_statuses()))
        .where(col(Review.row_version) == review.row_version)
        .values(
            approved_by=list(approved_by),
            assigned_to=None,
            assigned_at=None,
            row_version=col(Review.row_version) + 1,
        )
    )
    if seen_version is not None and seen_version != review.row_version:
        _conflict(session, review, raced=False)
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        _conflict(session, review, raced=seen_version is None)
    session.refresh(review)


def compare_and_set(
    session: Session,
    review: Review,
    status: ReviewStatus,
    actor: str,
    seen_version: int | None,
    *,
    approved_by: list[str] | None = None,
    expected_version: int | None = None,
) -> None:
    """Move an open review to ``status`` only if nobody decided it (or changed it since
    ``seen_version``, or since this transaction read ``expected_version``) first.

    Raises:
        DecisionConflict: naming who decided it, and when, or saying it changed.
        _CountRaced: only ``expected_version`` moved (another approval was counted first).
    """
    values: dict[str, Any] = {
        "status": status,
        "decided_by": actor,
        "decided_at": utcnow(),
        "row_version": col(Review.row_version) + 1,
    }
    if approved_by is not None:
        values["approved_by"] = approved_by
    statement = (
        sa.update(Review)
        .where(col(Review.id) == review.id)
        .where(col(Review.status).in_(ReviewStatus.open_statuses()))
        .values(**values)
    )
    if seen_version is not None:
        statement = statement.where(col(Review.row_version) == seen_version)
    if expected_version is not None:
        statement = statement.where(col(Review.row_version) == expected_version)
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        _conflict(session, review, raced=expected_version is not None and seen_version is None)
    session.refresh(review)


def _conflict(session: Session, review: Review, *, raced: bool) -> None:
    """Raise the conflict a failed compare-and-set on ``review`` stands for."""
    session.expire(review)
    current = session.get(Review, review.id)
    assert current is not None
    if current.status.is_open:
        error = _CountRaced if raced else DecisionConflict
        raise error(
            f"review {review.id} changed since you opened it (now tier {current.tier}"
            + (f", approved by {', '.join(current.approved_by)}" if current.approved_by else "")
            + "); reload it and decide again.",
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
    quorum: Quorum | None = None,
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
            "approved_by": list(review.approved_by),
            "approvals_required": review.approvals_required,
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
        approved_by=tuple(review.approved_by),
        approvals_required=quorum.required if quorum is not None else review.approvals_required,
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
