"""Four-eyes: a call whose rule asks for ``approvals: N`` executes once N distinct people have
approved the same arguments, and the person who submitted the task is never one of them.

An approval short of the count is recorded on the review (``approved_by``), which stays open; an
edit restarts the count with the editor, since the others approved arguments that are no longer
the ones that would run. The approval that completes the count is the one decision that closes
the review, by the same compare-and-set as any other, so the call still executes exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.enums import DecisionKind, ReviewKind

_COUNTED = (DecisionKind.APPROVE, DecisionKind.EDIT)


@dataclass(frozen=True)
class Quorum:
    """Where a review stands in its count of approvals.

    Attributes:
        review_id: the review.
        rule_id: the rule that asked for the approvals.
        required: how many distinct people must approve (1: anyone may decide alone).
        approved_by: who approved the current arguments so far, in order.
        submitted_by: who submitted the task whose call it is (None when unknown).
        task_id: that task.
    """

    review_id: int
    rule_id: str | None
    required: int
    approved_by: tuple[str, ...]
    submitted_by: str | None
    task_id: int | None = None

    @classmethod
    def of(
        cls,
        review_id: int,
        rule_id: str | None,
        kind: ReviewKind,
        required: int,
        approved_by: Sequence[str],
        *,
        submitted_by: str | None,
        task_id: int | None,
    ) -> Quorum:
        """The quorum of one review; only escalations count approvals."""
        counted = required if kind is ReviewKind.ESCALATION else 1
        return cls(review_id, rule_id, max(counted, 1), tuple(approved_by), submitted_by, task_id)

    @property
    def four_eyes(self) -> bool:
        """Whether more than one person must approve."""
        return self.required > 1

    @property
    def missing(self) -> int:
        """How many more approvals the call waits for."""
        return max(self.required - len(self.approved_by), 0)

    def refusal(self, actor: str, kind: DecisionKind) -> str | None:
        """Why ``actor`` may not take ``kind`` here (one sentence), or None if they may."""
        if not self.four_eyes or kind not in _COUNTED:
            return None
        if self.submitted_by is not None and actor == self.submitted_by:
            task = f"task {self.task_id}" if self.task_id is not None else "the task"
            return (
                f"{actor} submitted {task}, and rule {self.rule_id} needs {self.required} "
                "people other than the submitter to approve its calls; ask another operator."
            )
        if kind is DecisionKind.APPROVE and actor in self.approved_by:
            return (
                f"{actor} already approved review {self.review_id}; it needs "
                f"{self.missing} more approval(s) from other people."
            )
        return None

    def after(self, actor: str, kind: DecisionKind) -> tuple[str, ...]:
        """Who will have approved once ``actor`` takes ``kind``: an edit restarts the count."""
        if kind is DecisionKind.EDIT:
            return (actor,)
        return (*self.approved_by, actor)

    def completes(self, approved_by: Sequence[str]) -> bool:
        """Whether ``approved_by`` is enough people to let the call through."""
        return len(set(approved_by)) >= self.required

    def describe(self, approved_by: Sequence[str]) -> str:
        """'approved by olga (1 of 2)', for a note or the queue."""
        who = ", ".join(approved_by) or "nobody"
        return f"approved by {who} ({len(approved_by)} of {self.required})"
