"""One call's path through the gate and the ledger, the same for every call a run makes.

A proposed call, an approved one, an edited one and an overridden one all take this path:
authorize (scope, arguments, policy, with what people authorized), admit (rate limit, circuit
breaker), then, for a call that touches a policy counter, decide again under the counter's lock
and reserve in the same transaction; then hold the ledger row, execute, record. An approval
satisfies an escalation; it never makes a call skip the gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.calls import Effect, Observation, ProposedCall
from agent.mediation.authorization import NO_AUTHORIZATION, Authorization
from agent.mediation.mediator import GateResult
from agent.runtime.escalation import Escalation
from agent.runtime.gate import CallGate
from agent.runtime.ledger import Ledger, mark_applied
from agent.runtime.session import RunSession
from storage.enums import ErrorClass

_LOCKED_NOTE = "decided again under the locks of the policy counters it reads or adds to"


class CallHandler:
    """Takes calls of one run through the gate, the ledger and the tool."""

    def __init__(
        self, run: RunSession, gate: CallGate, ledger: Ledger, escalation: Escalation
    ) -> None:
        self.run = run
        self.gate = gate
        self.ledger = ledger
        self.escalation = escalation

    def handle(
        self,
        call: ProposedCall,
        authorization: Authorization = NO_AUTHORIZATION,
        *,
        review_id: int | None = None,
    ) -> None:
        """Decide ``call`` and act on the decision; everything it did is saved or queued.

        Args:
            call: the call as proposed, or as the person who authorized it left it.
            authorization: what people authorized for this call.
            review_id: the decided review this call carries out (marked applied with it).
        """
        if review_id is not None:
            self.run.defer(mark_applied(review_id))
        facts: dict[str, Any] = {}
        decided = self.gate.authorize(call, authorization, facts=facts)
        if not decided.decision.allowed:
            self._refuse(call, [decided], review_id)
            self.run.commit()
            return
        admitted = self.gate.admit(call)
        if not admitted.decision.allowed:
            self._refuse(call, [decided, admitted], review_id)
            self.run.commit()
            return
        entry = self.ledger.entry(call, review_id)
        if self.gate.counters(call):
            # The decision above read the counters outside any lock; a concurrent run may have
            # taken the last unit since. Decide again under the lock, and reserve with it.
            with self.run.transaction() as connection:
                shares = self.gate.lock(connection, call)
                decided = self.gate.authorize(
                    call, authorization, connection=connection, facts=facts
                )
                if not decided.decision.allowed:
                    self._refuse(call, [decided], review_id, note=_LOCKED_NOTE)
                    return
                self.run.guardrail(call, [decided, admitted], note=_LOCKED_NOTE)
                entry = self.ledger.hold(entry, shares)
        else:
            self.run.guardrail(call, [decided, admitted])
            if self.gate.version.tool_specs[call.tool].has_side_effects:
                # Committed before the tool runs: after a crash this row says it may have run.
                entry = self.ledger.hold(entry, ())
                self.run.commit()
        self.ledger.finish(entry, self.ledger.execute(entry))

    def _refuse(
        self,
        call: ProposedCall,
        gates: Sequence[GateResult],
        review_id: int | None,
        *,
        note: str | None = None,
    ) -> None:
        """Record a decision that does not let ``call`` run now, and what follows from it: a
        review for people, or an observation the planner can act on."""
        decision = gates[-1].decision
        self.run.guardrail(call, gates, note=note)
        if decision.effect is Effect.ESCALATE:
            self.escalation.escalate(call, decision, parent_id=review_id)
            return
        self.run.state.denial_count += 1
        if decision.stage == "policy" and decision.override_roles:
            self.escalation.block(call, decision, parent_id=review_id)
            return
        invalid = decision.error_class is ErrorClass.INVALID_ARGUMENTS
        self.run.observe(
            Observation(
                call.call_id,
                call.tool,
                "error" if invalid else "denied",
                {
                    "message": f"denied by rule {decision.rule_id}: {decision.reason}",
                    "rule_id": decision.rule_id,
                },
                decision.error_class,
            )
        )
