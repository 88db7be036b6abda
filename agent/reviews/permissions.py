"""Who may take which decision on a review: one place, for the service and the console alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from agent.actors import DECIDE_ROLES, SYSTEM, Actor, require
from agent.errors import Forbidden, InvalidInput
from storage.enums import DecisionKind, ReviewKind


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


def check_permission(actor: Actor, review: Decidable, kind: DecisionKind) -> None:
    """Raise unless ``actor`` may take decision ``kind`` on ``review``.

    Raises:
        Forbidden: the actor's roles do not allow it.
        InvalidInput: that kind of decision does not apply to that kind of review.
    """
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


def permitted_decisions(actor: Actor, review: Decidable) -> frozenset[DecisionKind]:
    """The decisions ``actor`` may take on an open ``review``, by the same rules ``decide``
    applies. The console offers exactly these actions; ``decide`` checks again when one is
    taken."""
    permitted = set()
    for kind in PERSON_DECISIONS:
        try:
            check_permission(actor, review, kind)
        except (Forbidden, InvalidInput):
            continue
        permitted.add(kind)
    return frozenset(permitted)
