"""What people authorized for a call: approvals of escalations and overrides of denies, by rule.

A decided review grants its call something, bound to the exact arguments it was given for; the
gate takes the rules a call's grants cover out of its decision and decides the rest afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.binding import args_hash
from agent.calls import Effect
from storage.enums import ReviewStatus
from storage.models import Review


@dataclass(frozen=True)
class Authorization:
    """What people authorized for one call, by rule: the escalations they approved and the
    denies a permitted role overrode, carried by a review bound to the call's exact arguments.

    The gate still decides every authorized call afresh; an authorization only takes the rules
    it names out of the decision. An approval satisfies an escalation, never a deny: only an
    override lifts a deny rule, and only the rule it was given for.
    """

    review_id: int | None = None
    approved: frozenset[str] = frozenset()
    overridden: frozenset[str] = frozenset()
    by: tuple[str, ...] = ()

    def covers(self, rule_id: str | None, effect: Effect) -> bool:
        """Whether a rule of ``effect`` that matched the call is authorized away."""
        if rule_id is None or effect is Effect.ALLOW:
            return False
        if effect is Effect.DENY:
            return rule_id in self.overridden
        return rule_id in self.approved or rule_id in self.overridden

    @property
    def given(self) -> bool:
        return bool(self.approved or self.overridden)

    def describe(self) -> str:
        """'approved by olga (review 12)' or similar, for a trace or a reason."""
        who = ", ".join(self.by) or "a person"
        what = "overridden" if self.overridden else "approved"
        return f"{what} by {who}" + (f" (review {self.review_id})" if self.review_id else "")

    def as_dict(self) -> dict[str, object]:
        return {
            "review_id": self.review_id,
            "approved": sorted(self.approved),
            "overridden": sorted(self.overridden),
            "by": list(self.by),
        }


NO_AUTHORIZATION = Authorization()
"""A call nobody has decided on: every matching rule applies."""


@dataclass(frozen=True)
class Grant:
    """One decision in a call's favour: an approval (or edit) of an escalation by ``rule_id``,
    or an override of a deny by it, bound to the hash of the arguments it was given for."""

    call_id: str
    rule_id: str
    overridden: bool
    args_hash: str
    by: str | None = None


def authorization_for(
    call_id: str, bound_hash: str, grants: Iterable[Grant], *, review_id: int | None
) -> Authorization:
    """What ``grants`` authorize for call ``call_id`` with arguments hashing to ``bound_hash``:
    a grant for another call, or for other arguments (before an edit, say), authorizes nothing.
    """
    approved: set[str] = set()
    overridden: set[str] = set()
    by: list[str] = []
    for grant in grants:
        if grant.call_id != call_id or grant.args_hash != bound_hash:
            continue
        (overridden if grant.overridden else approved).add(grant.rule_id)
        if grant.by and grant.by not in by:
            by.append(grant.by)
    return Authorization(review_id, frozenset(approved), frozenset(overridden), tuple(by))


def grant_of(review: Review, bound_args: Mapping[str, Any]) -> Grant | None:
    """The grant a decided review gives its call (approved, edited or overridden), bound to
    ``bound_args`` (an edit's arguments, else those proposed); None if it grants nothing."""
    if not review.status.authorizes or review.call_id is None or review.rule_id is None:
        return None
    return Grant(
        review.call_id,
        review.rule_id,
        overridden=review.status is ReviewStatus.OVERRIDDEN,
        args_hash=args_hash(dict(bound_args)),
        # Under a four-eyes rule every person who approved, in order; else the one decider.
        by=", ".join(review.approved_by) if review.approved_by else review.decided_by,
    )
