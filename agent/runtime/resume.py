"""Acting on what people decided while a run waited: the human step, then the call or its refusal.

An approved, edited or overridden call goes back through the gate (``CallHandler``) with the
authorization its reviews carry, bound to the exact arguments they were given for; a rejected or
expired one becomes an observation the planner can act on; an outcome check settles the ledger;
an output check ends the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from agent.binding import args_hash
from agent.calls import Observation, ProposedCall
from agent.mediation.authorization import Authorization, authorization_for, grant_of
from agent.runtime.calls import CallHandler
from agent.runtime.endings import finish
from agent.runtime.ledger import Ledger, mark_applied
from agent.runtime.records import redact
from agent.runtime.session import RunSession
from storage.engine import read_session
from storage.enums import ErrorClass, ReviewKind, ReviewStatus, RunStatus, StepKind, StepStatus
from storage.models import Review, ReviewDecision
from storage.types import utcnow


@dataclass(frozen=True)
class Decided:
    """A decided review with the last decision taken on it (None for an SLA expiry's tier
    hand-over, which records no arguments)."""

    review: Review
    decision: ReviewDecision | None

    @property
    def bound_args(self) -> dict[str, Any]:
        """The arguments the decision authorizes: edited ones, else those proposed."""
        if self.decision is not None and self.decision.args is not None:
            return dict(self.decision.args)
        return dict(self.review.args or {})


class Resume:
    """Applies a run's decided, not yet applied reviews, oldest first."""

    def __init__(
        self,
        run: RunSession,
        calls: CallHandler,
        ledger: Ledger,
        over_budget: Callable[[], str | None],
    ) -> None:
        self.run = run
        self.state = run.state
        self.calls = calls
        self.ledger = ledger
        self.over_budget = over_budget

    def apply(self) -> RunStatus | None:
        """Act on every decision taken since the run parked; a status if the run ended."""
        decided = self._decided()
        authorizing = [d for d in decided if d.review.status.authorizes]
        for item in decided:
            if item.review.applied_at is not None:
                continue
            outcome = self._apply(item, authorizing)
            if outcome is not None:
                return outcome
        return None

    def _apply(self, item: Decided, authorizing: Sequence[Decided]) -> RunStatus | None:
        review = item.review
        approved = review.status.authorizes
        self._human_step(item)
        if review.kind is ReviewKind.OUTPUT_INVALID:
            self.run.commit(mark_applied(review.id))
            if approved:
                return finish(self.run, RunStatus.SUCCEEDED, output=item.bound_args)
            expired = review.status is ReviewStatus.EXPIRED
            reason = item.decision.reason if item.decision else ""
            return finish(
                self.run,
                RunStatus.FAILED,
                ErrorClass.REVIEW_EXPIRED if expired else ErrorClass.HUMAN_REJECTED,
                f"output review {review.status.value}: {reason}".strip(": "),
            )
        call = ProposedCall(review.call_id or "", review.tool or "", item.bound_args)
        if review.kind is ReviewKind.OUTCOME_UNKNOWN:
            self._verification(item, call, approved)
            return None
        if approved and review.tool is not None and review.call_id is not None:
            exhausted = self.over_budget()
            if exhausted:
                self.run.commit(mark_applied(review.id))
                return finish(self.run, RunStatus.ESCALATED, ErrorClass.BUDGET_EXHAUSTED, exhausted)
            authorization = _authorization(call, review.id, authorizing)
            self.calls.handle(call, authorization, review_id=review.id)
            return None
        self._refusal(item, call)
        return None

    def _decided(self) -> list[Decided]:
        """The run's decided reviews (applied ones too: an earlier approval of a call still
        counts when that call comes back as a block), each with its last decision."""
        with read_session(self.run.engine) as session:
            reviews = session.exec(
                select(Review)
                .where(col(Review.run_id) == self.state.run_id)
                .where(col(Review.status).not_in(ReviewStatus.open_statuses()))
                .order_by(col(Review.id))
            ).all()
            last: dict[int, ReviewDecision] = {}
            if reviews:
                for decision in session.exec(
                    select(ReviewDecision)
                    .where(col(ReviewDecision.review_id).in_([r.id for r in reviews]))
                    .order_by(col(ReviewDecision.id))
                ).all():
                    last[decision.review_id] = decision
        return [Decided(r, last.get(r.id or 0)) for r in reviews]

    def _human_step(self, item: Decided) -> None:
        review, decision = item.review, item.decision
        approved = review.status.authorizes
        expired = review.status is ReviewStatus.EXPIRED
        waited_ms = (
            (review.decided_at - review.created_at).total_seconds() * 1000
            if review.decided_at
            else 0.0
        )
        self.run.step(
            StepKind.HUMAN_APPROVAL,
            f"{review.kind.value} review",
            StepStatus.OK if approved else StepStatus.DENIED,
            call_id=review.call_id,
            error_class=None
            if approved
            else (ErrorClass.REVIEW_EXPIRED if expired else ErrorClass.HUMAN_REJECTED),
            input={"review_id": review.id, "tool": review.tool, "rule_id": review.rule_id},
            output={
                "decision": review.status.value,
                "decided_by": review.decided_by,
                "approved_by": list(review.approved_by),
                "reason": decision.reason if decision else "",
                "edited_args": redact(decision.args) if decision else None,
            },
            attributes={"review_id": review.id, "rule_id": review.rule_id, "tier": review.tier},
            started_at=review.created_at,
            ended_at=review.decided_at or utcnow(),
            duration_ms=waited_ms,
        )

    def _verification(self, item: Decided, call: ProposedCall, happened: bool) -> None:
        who = item.review.decided_by or "system"
        note = item.decision.reason if item.decision else ""
        save = self.ledger.verified(call, happened, who, note)
        if happened:
            content: Mapping[str, Any] = {
                "verified_by": who,
                "note": note,
                "message": f"{who} confirmed the call took effect",
            }
            self.run.observe(Observation(call.call_id, call.tool, "ok", content))
        else:
            message = f"{who} found the call did not take effect: {note}"
            self.run.observe(
                Observation(
                    call.call_id,
                    call.tool,
                    "error",
                    {"message": message},
                    ErrorClass.OUTCOME_UNKNOWN,
                )
            )
        self.run.defer(mark_applied(item.review.id))
        self.run.commit(save)

    def _refusal(self, item: Decided, call: ProposedCall) -> None:
        review = item.review
        self.state.rejection_count += 1
        expired = review.status is ReviewStatus.EXPIRED
        who = review.decided_by or "system"
        reason = item.decision.reason if item.decision else ""
        self.run.observe(
            Observation(
                call.call_id,
                call.tool,
                "expired" if expired else "rejected",
                {
                    "reason": reason,
                    "decided_by": who,
                    "message": (
                        "the review expired without a decision"
                        if expired
                        else f"rejected by {who}: {reason}"
                    ),
                },
                ErrorClass.REVIEW_EXPIRED if expired else ErrorClass.HUMAN_REJECTED,
            )
        )
        self.run.commit(mark_applied(review.id))


def _authorization(
    call: ProposedCall, review_id: int | None, authorizing: Sequence[Decided]
) -> Authorization:
    """What the reviews of ``call`` authorize for exactly these arguments."""
    grants = [grant_of(item.review, item.bound_args) for item in authorizing]
    return authorization_for(
        call.call_id,
        args_hash(dict(call.args)),
        [g for g in grants if g is not None],
        review_id=review_id,
    )
