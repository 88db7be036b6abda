"""The one place a run asks people: it builds every review and scores its risk.

A review is bound to the exact call it asks about (tool, arguments and their hash, the agent
version and the policy's hash) so that what a person decides is what executes. Reviews are
queued on the run's session and saved with the commit that records why they were raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from agent.binding import args_hash
from agent.calls import ProposedCall
from agent.compiled import CompiledVersion
from agent.mediation.decision import Decision
from agent.runtime.records import redact
from agent.runtime.session import RunSession
from storage.enums import ReviewKind, ReviewStatus, SideEffect
from storage.models import Review
from storage.tables import REVIEWS
from storage.types import utcnow

_RISK_BASE = {SideEffect.READ: 0, SideEffect.WRITE: 1000, SideEffect.IRREVERSIBLE: 2000}
_MAX_AT_STAKE = 999  # below the gap between two side-effect classes, so the class sorts first
DEFAULT_SLA_MINUTES = 60.0


def describe_risk(risk: int) -> str:
    """A review's risk score in words: what kind of call it is and how much is at stake, as
    ``Escalation.risk`` composed it (``irreversible · 999+ at stake``)."""
    side = next(
        (
            effect
            for effect, base in sorted(_RISK_BASE.items(), key=lambda i: -i[1])
            if risk >= base
        ),
        SideEffect.READ,
    )
    at_stake = risk - _RISK_BASE[side]
    what = {
        SideEffect.READ: "reads only",
        SideEffect.WRITE: "changes data",
        SideEffect.IRREVERSIBLE: "cannot be undone",
    }[side]
    if at_stake <= 0:
        return what
    return f"{what} · {at_stake:,}{'+' if at_stake >= _MAX_AT_STAKE else ''} at stake"


class Escalation:
    """Raises a run's reviews: escalations, blocks, outcome checks and output checks."""

    def __init__(self, run: RunSession, version: CompiledVersion) -> None:
        self.run = run
        self.version = version

    def escalate(self, call: ProposedCall, decision: Decision, *, parent_id: int | None) -> None:
        """Ask an operator to approve, edit or reject a call the policy escalated."""
        self._raise(
            ReviewKind.ESCALATION,
            ReviewStatus.PENDING,
            call,
            rule_id=decision.rule_id,
            reason=decision.reason,
            sla_minutes=decision.sla_minutes,
            parent_id=parent_id,
            approvals=decision.approvals,
        )

    def block(self, call: ProposedCall, decision: Decision, *, parent_id: int | None) -> None:
        """Show a call a policy rule denied to the roles that rule lets override it."""
        self._raise(
            ReviewKind.BLOCK,
            ReviewStatus.BLOCKED,
            call,
            rule_id=decision.rule_id,
            reason=decision.reason,
            sla_minutes=None,
            override_roles=decision.override_roles,
            parent_id=parent_id,
        )

    def outcome_unknown(self, call: ProposedCall, why: str, *, parent_id: int | None) -> None:
        """Ask a person whether a call that cannot safely be repeated took effect."""
        self._raise(
            ReviewKind.OUTCOME_UNKNOWN,
            ReviewStatus.PENDING,
            call,
            rule_id="outcome-unknown",
            reason=f"{call.tool} is not idempotent and its outcome is unknown ({why}). Check the "
            "system of record: approve if it took effect, reject if it did not.",
            sla_minutes=DEFAULT_SLA_MINUTES,
            parent_id=parent_id,
        )

    def output_invalid(self, answer: Mapping[str, Any], problems: list[str]) -> None:
        """Ask a person to accept, correct or reject an answer that breaks the contract."""
        self._raise(
            ReviewKind.OUTPUT_INVALID,
            ReviewStatus.PENDING,
            None,
            args=dict(answer),
            rule_id="output-contract",
            reason="The final answer does not meet the output contract: " + "; ".join(problems),
            sla_minutes=DEFAULT_SLA_MINUTES,
            parent_id=None,
        )

    def risk(self, tool: str, args: Mapping[str, Any]) -> int:
        """Queue order within the same SLA: side-effect class first, then the amount at stake.

        ``describe_risk`` reads a score back in words."""
        spec = self.version.tool_specs.get(tool)
        base = _RISK_BASE[spec.side_effect] if spec else 0
        amount = args.get("amount")
        at_stake = (
            int(min(float(amount), float(_MAX_AT_STAKE))) if isinstance(amount, int | float) else 0
        )
        return base + max(at_stake, 0)

    def _raise(
        self,
        kind: ReviewKind,
        status: ReviewStatus,
        call: ProposedCall | None,
        *,
        rule_id: str | None,
        reason: str,
        sla_minutes: float | None,
        parent_id: int | None,
        args: Mapping[str, Any] | None = None,
        override_roles: tuple[str, ...] = (),
        approvals: int = 1,
    ) -> None:
        state = self.run.state
        bound = dict(call.args) if call is not None else dict(args or {})
        stored = redact(bound)
        review = Review(
            run_id=state.run_id,
            agent_id=state.agent_id,
            version_id=state.version_id,
            parent_id=parent_id,
            kind=kind,
            status=status,
            call_id=call.call_id if call is not None else None,
            tool=call.tool if call is not None else None,
            args=stored,
            args_hash=args_hash(stored),
            policy_hash=self.version.policy.hash,
            rule_id=rule_id,
            reason=reason[:2000],
            risk=self.risk(call.tool, bound) if call is not None else 0,
            tier=1,
            override_roles=list(override_roles),
            approvals_required=approvals,
            sla_due_at=utcnow() + timedelta(minutes=sla_minutes or DEFAULT_SLA_MINUTES),
        )
        self.run.insert(REVIEWS, review.model_dump(exclude={"id"}))
        state.reviews_open = True
