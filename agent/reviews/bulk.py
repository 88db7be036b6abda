"""Approving or rejecting several reviews at once, each decided on its own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.actors import Actor
from agent.errors import InvalidInput, ServiceError
from agent.platform import Platform
from agent.reviews.decide import decide
from storage.enums import DecisionKind


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
        platform: the composition root.
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
        if result.note:
            tail = f"{tail} Note: {result.note}"
        outcomes.append(
            BulkOutcome(
                review_id,
                decided=True,
                message=f"review {review_id} {result.status.value} by {result.decided_by}{tail}",
                run_resumes=result.run_resumes,
            )
        )
    return tuple(outcomes)
