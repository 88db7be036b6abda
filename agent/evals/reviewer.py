"""The scripted reviewer: answers an evaluation's reviews through the real review service.

Each answer is used once, the first whose ``tool`` and ``rule`` match the review, the case's own
answers before the suite's. A review no answer matches is left open, and the case's run stays
waiting, as it would for people who never decide.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select

from agent.actors import Actor
from agent.evals.spec import ReviewerAnswer
from agent.platform import Platform
from agent.reviews import decide, expire_review
from storage.engine import read_session
from storage.enums import DecisionKind, ReviewStatus
from storage.models import Review

EVALUATOR = "evaluator"
_KINDS = {
    "approve": DecisionKind.APPROVE,
    "edit": DecisionKind.EDIT,
    "reject": DecisionKind.REJECT,
    "override": DecisionKind.OVERRIDE,
}


class ScriptedReviewer:
    """Answers the open reviews of one case's run, each answer once."""

    def __init__(self, platform: Platform, answers: Sequence[ReviewerAnswer]) -> None:
        self.platform = platform
        self.remaining = list(answers)

    def answer(self, run_id: int) -> int:
        """Decide the run's open reviews that an answer matches; returns how many were."""
        with read_session(self.platform.engine) as session:
            open_reviews = session.exec(
                select(Review)
                .where(col(Review.run_id) == run_id)
                .where(col(Review.status).in_(ReviewStatus.open_statuses()))
                .order_by(col(Review.id))
            ).all()
        answered = 0
        for review in open_reviews:
            answer = next(
                (a for a in self.remaining if a.matches(review.tool, review.rule_id)), None
            )
            if answer is None or review.id is None:
                continue
            self.remaining.remove(answer)
            # Under a four-eyes rule each answer approves as another person.
            approver = EVALUATOR + (f"-{len(review.approved_by) + 1}" if review.approved_by else "")
            self._apply(review.id, review.row_version, answer, approver)
            answered += 1
        return answered

    def _apply(
        self, review_id: int, seen_version: int, answer: ReviewerAnswer, approver: str = EVALUATOR
    ) -> None:
        if answer.decision == "expire":
            expire_review(self.platform, review_id)
            return
        actor = Actor.of(approver, [answer.role])
        reason = answer.reason or f"the evaluation's scripted reviewer: {answer.decision}"
        kind = _KINDS[answer.decision]
        decide(
            self.platform,
            actor,
            review_id,
            kind,
            reason=reason,
            args=dict(answer.args) if answer.args is not None else None,
            seen_version=seen_version,
        )
