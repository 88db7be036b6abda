"""Deciding reviews: approve, edit and approve, reject, override a block, expire by SLA.

Used by the CLI and the console alike. Each decision is a compare-and-set on the review row
(open status, and the row version the person saw), so of two concurrent decisions exactly one
applies and the other gets a ``DecisionConflict`` naming who decided. A decision never runs the
call itself: it makes the run claimable, and the worker executes the approved call once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from agent.actors import DECIDE_ROLES, SYSTEM, Actor, require
from agent.binding import args_hash
from agent.calls import Effect
from agent.errors import DecisionConflict, Forbidden, InvalidInput, NotFound, ServiceError
from agent.platform import Platform
from agent.tools.registry import FactContext
from agent.tools.validation import validate_args
from storage.audit import append_event
from storage.engine import write_session
from storage.enums import (
    DecisionKind,
    ReviewKind,
    ReviewStatus,
    RunStatus,
    ToolCallStatus,
)
from storage.models import Review, ReviewDecision, Run, Task, ToolCall
from storage.types import utcnow

OPEN = (ReviewStatus.PENDING, ReviewStatus.BLOCKED)
_RESULT_STATUS = {
    DecisionKind.APPROVE: ReviewStatus.APPROVED,
    DecisionKind.EDIT: ReviewStatus.EDITED,
    DecisionKind.REJECT: ReviewStatus.REJECTED,
    DecisionKind.OVERRIDE: ReviewStatus.OVERRIDDEN,
    DecisionKind.EXPIRE: ReviewStatus.EXPIRED,
}


@dataclass(frozen=True)
class DecisionResult:
    review_id: int
    status: ReviewStatus
    decided_by: str
    run_id: int
    run_resumes: bool
    new_review_id: int | None = None


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
    """Authorize the call with corrected arguments, re-validated and re-checked by policy."""
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
    """Apply one human decision. Raises Forbidden, InvalidInput, NotFound or DecisionConflict;
    on any of them nothing was changed."""
    reason = (reason or "").strip()
    with write_session(platform.engine) as session:
        review = session.get(Review, review_id)
        if review is None:
            raise NotFound(f"review {review_id} does not exist.")
        _check_permission(actor, review, kind)
        if kind in (DecisionKind.REJECT, DecisionKind.OVERRIDE) and not reason:
            what = "a rejection" if kind is DecisionKind.REJECT else "an override"
            raise InvalidInput(f"{what} needs a reason.")
        bound_args: dict[str, Any] | None = None
        if kind is DecisionKind.EDIT:
            bound_args = _checked_edit(platform, session, review, args)
        status = _RESULT_STATUS[kind]
        _compare_and_set(session, review, status, actor.name, seen_version)
        result = _record(session, review, kind, actor, reason, bound_args)
    return result


class Decidable(Protocol):
    """What a permission check reads of a review: a stored row or a read model of one."""

    @property
    def id(self) -> int | None: ...
    @property
    def kind(self) -> ReviewKind: ...
    @property
    def rule_id(self) -> str | None: ...
    @property
    def override_roles(self) -> Sequence[str]: ...


PERSON_DECISIONS = (
    DecisionKind.APPROVE,
    DecisionKind.EDIT,
    DecisionKind.REJECT,
    DecisionKind.OVERRIDE,
)


def permitted_decisions(actor: Actor, review: Decidable) -> frozenset[DecisionKind]:
    """The decisions ``actor`` may take on an open ``review``, by the same rules ``decide`` applies.

    The console offers exactly these actions; ``decide`` checks again when one is taken.
    """
    permitted = set()
    for kind in PERSON_DECISIONS:
        try:
            _check_permission(actor, review, kind)
        except (Forbidden, InvalidInput):
            continue
        permitted.add(kind)
    return frozenset(permitted)


@dataclass(frozen=True)
class BulkOutcome:
    """What became of one review in a bulk decision.

    Attributes:
        review_id: the review.
        decided: whether this decision applied.
        message: one sentence: what happened, or why nothing did.
        run_resumes: whether the review's run became claimable.
    """

    review_id: int
    decided: bool
    message: str
    run_resumes: bool = False


BULK_DECISIONS = (DecisionKind.APPROVE, DecisionKind.REJECT)


def decide_many(
    platform: Platform,
    actor: Actor,
    kind: DecisionKind,
    seen: Mapping[int, int | None] | Iterable[int],
    *,
    reason: str = "",
) -> tuple[BulkOutcome, ...]:
    """Approve or reject several reviews, each in its own transaction with its own audit event.

    One review failing (decided by someone else meanwhile, a block that cannot be approved, a
    role that may not decide it) leaves the others unaffected; its outcome says why.

    Args:
        engine: the database.
        actor: who decides.
        kind: ``APPROVE`` or ``REJECT``.
        seen: the review ids, or a mapping of review id to the row version the person saw
            (each decision then fails if that review changed since).
        reason: the reason recorded on every decision; required to reject.

    Returns:
        One outcome per review, in the order given.

    Raises:
        InvalidInput: ``kind`` cannot be taken in bulk, or a rejection has no reason; nothing
            was changed.
    """
    if kind not in BULK_DECISIONS:
        raise InvalidInput(
            f"only approve and reject can be taken in bulk, not {kind.value}; "
            "decide each review on its own."
        )
    if kind is DecisionKind.REJECT and not (reason or "").strip():
        raise InvalidInput("a rejection needs a reason.")
    versions = dict(seen) if isinstance(seen, Mapping) else dict.fromkeys(seen)
    outcomes = []
    for review_id, seen_version in versions.items():
        try:
            result = decide(
                platform, actor, review_id, kind, reason=reason, seen_version=seen_version
            )
        except ServiceError as exc:
            outcomes.append(BulkOutcome(review_id, decided=False, message=str(exc)))
            continue
        tail = "; the run resumes." if result.run_resumes else "."
        outcomes.append(
            BulkOutcome(
                review_id,
                decided=True,
                message=f"review {review_id} {result.status.value} by {result.decided_by}{tail}",
                run_resumes=result.run_resumes,
            )
        )
    return tuple(outcomes)


def _check_permission(actor: Actor, review: Decidable, kind: DecisionKind) -> None:
    action = f"{kind.value} review {review.id}"
    if kind is DecisionKind.OVERRIDE:
        if review.kind is not ReviewKind.BLOCK:
            raise InvalidInput(
                f"review {review.id} is an {review.kind.value}, not a block; "
                "only blocks can be overridden (approve it instead)."
            )
        if not review.override_roles:
            raise Forbidden(f"rule {review.rule_id} is absolute: nobody may override it.")
        require(actor, review.override_roles, action)
        return
    if kind is DecisionKind.EXPIRE:
        if actor != SYSTEM:
            raise Forbidden("only the SLA clock expires reviews.")
        return
    if review.kind is ReviewKind.BLOCK:
        if kind is not DecisionKind.REJECT:
            raise InvalidInput(
                f"review {review.id} is blocked by rule {review.rule_id}; it can only be "
                f"overridden (by {', '.join(review.override_roles) or 'nobody'}) or rejected."
            )
        require(actor, {*DECIDE_ROLES, *review.override_roles}, action)
        return
    if kind is DecisionKind.EDIT and review.kind is ReviewKind.OUTCOME_UNKNOWN:
        raise InvalidInput(
            "an outcome check is approved (it took effect) or rejected "
            "(it did not); it cannot be edited."
        )
    require(actor, DECIDE_ROLES, action)


def parse_edited_args(args: Any) -> dict[str, Any]:
    """Edited arguments as a dict, from a mapping or from JSON text.

    Raises:
        InvalidInput: the text is not JSON, or not a JSON object (the message says where).
    """
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"the edited arguments are not valid JSON: {exc.msg} at line "
                f"{exc.lineno} column {exc.colno}."
            ) from None
    if not isinstance(args, Mapping):
        raise InvalidInput("the edited arguments must be a JSON object.")
    return dict(args)


def _checked_edit(
    platform: Platform, session: Session, review: Review, args: Any
) -> dict[str, Any]:
    edited = parse_edited_args(args)
    args = edited
    version = platform.versions.get(review.version_id)
    if review.kind is ReviewKind.OUTPUT_INVALID:
        run = session.get(Run, review.run_id)
        task = session.get(Task, run.task_id) if run else None
        problems = version.output_problems(args, task.input if task else {})
        if problems:
            raise InvalidInput(
                "the edited output still breaks the contract: " + "; ".join(problems[:3]) + "."
            )
        return edited
    spec = version.tool_specs.get(review.tool or "")
    if spec is None:
        raise InvalidInput(f"tool {review.tool!r} is no longer in version scope.")
    problems = validate_args(spec, args)
    if problems:
        raise InvalidInput(
            f"the edited arguments do not fit {spec.name}: " + "; ".join(problems[:3]) + "."
        )
    run = session.get(Run, review.run_id)
    task = session.get(Task, run.task_id) if run else None
    variables = {
        "args": args,
        "task": dict(task.input) if task else {},
        "run": _run_variables(session, review.run_id),
        "agent": version.agent_variables(),
        "facts": platform.registry.facts_for(
            version.spec,
            FactContext(
                engine=platform.engine,
                tool=spec.name,
                args=args,
                task=dict(task.input) if task else {},
                run_id=review.run_id,
            ),
        ),
    }
    decision = version.policy.evaluate(spec.name, variables)
    if decision.effect is Effect.DENY:
        raise InvalidInput(
            f"the edited call is denied by rule {decision.rule_id}: "
            f"{decision.reason}. Approval cannot lift a deny rule."
        )
    return edited


def _run_variables(session: Session, run_id: int) -> dict[str, Any]:
    rows = session.exec(
        select(ToolCall)
        .where(col(ToolCall.run_id) == run_id)
        .where(col(ToolCall.status) == ToolCallStatus.SUCCEEDED)
    ).all()
    calls: dict[str, int] = {}
    sums: dict[str, dict[str, float]] = {}
    for row in rows:
        calls[row.tool] = calls.get(row.tool, 0) + 1
        for key, value in (row.args or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                sums.setdefault(row.tool, {})[key] = sums.get(row.tool, {}).get(key, 0.0) + value
    return {"id": run_id, "calls": calls, "sums": sums}


def _compare_and_set(
    session: Session, review: Review, status: ReviewStatus, actor: str, seen_version: int | None
) -> None:
    statement = (
        sa.update(Review)
        .where(col(Review.id) == review.id)
        .where(col(Review.status).in_(OPEN))
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
        if current.status in OPEN:
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


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "an unknown time"


def _record(  # noqa: PLR0917 - internal, called with the decision's parts in order
    session: Session,
    review: Review,
    kind: DecisionKind,
    actor: Actor,
    reason: str,
    args: dict[str, Any] | None,
    *,
    new_review: Review | None = None,
) -> DecisionResult:
    assert review.id is not None
    session.add(
        ReviewDecision(
            review_id=review.id,
            decision=kind,
            actor=actor.name,
            reason=reason,
            args=args,
            args_hash=args_hash(args) if args is not None else None,
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
            "args_hash": args_hash(args) if args is not None else None,
            "tier": review.tier,
            "new_review_id": new_review.id if new_review is not None else None,
        },
    )
    resumes = False
    if new_review is None:
        resumes = _resume_if_clear(session, review.run_id)
    return DecisionResult(
        review_id=review.id,
        status=review.status,
        decided_by=actor.name,
        run_id=review.run_id,
        run_resumes=resumes,
        new_review_id=new_review.id if new_review is not None else None,
    )


def _resume_if_clear(session: Session, run_id: int) -> bool:
    """Make the run claimable when none of its reviews is still open."""
    still_open = session.exec(
        select(Review.id)
        .where(col(Review.run_id) == run_id)
        .where(col(Review.status).in_(OPEN))
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


def expire_overdue(platform: Platform, *, now: datetime | None = None, limit: int = 200) -> int:
    """Expire open reviews past their SLA: escalate to the next tier or reject, per the rule."""
    moment = now or utcnow()
    with write_session(platform.engine) as session:
        overdue = session.exec(
            select(Review)
            .where(col(Review.status).in_(OPEN))
            .where(col(Review.sla_due_at) < moment)
            .order_by(col(Review.sla_due_at))
            .limit(limit)
        ).all()
        for review in overdue:
            _expire_one(platform, session, review, moment)
    return len(overdue)


def _expire_one(platform: Platform, session: Session, review: Review, moment: datetime) -> None:
    rule = next(
        (
            r
            for r in platform.versions.get(review.version_id).spec.policy.rules
            if r.id == review.rule_id
        ),
        None,
    )
    _compare_and_set(session, review, ReviewStatus.EXPIRED, SYSTEM.name, None)
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
            sla_due_at=moment + timedelta(minutes=rule.sla_minutes or 60),
        )
        session.add(child)
        review.applied_at = moment  # replaced by the next tier; the worker has nothing to apply
        session.add(review)
        session.flush()
    _record(
        session,
        review,
        DecisionKind.EXPIRE,
        SYSTEM,
        "the SLA passed without a decision",
        None,
        new_review=child,
    )
