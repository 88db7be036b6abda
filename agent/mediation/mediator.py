"""The ordered gate every proposed call passes, stage by stage, with each outcome timed.

``authorize`` runs scope, arguments and policy (what a person's approval can stand in for);
``admit`` runs rate limit and circuit breaker right before execution (what no approval skips).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.calls import ProposedCall
from agent.mediation.decision import Decision
from agent.mediation.guards import CallContext, Guard


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    decision: Decision | None  # None: passed without a rule; an allow names the rule
    duration_us: float


@dataclass(frozen=True)
class GateResult:
    decision: Decision
    stages: tuple[StageOutcome, ...]

    def trace(self) -> list[dict[str, Any]]:
        """The stages as JSON for the trace step."""
        return [
            {
                "stage": s.stage,
                "outcome": s.decision.effect.value if s.decision else "pass",
                "rule_id": s.decision.rule_id if s.decision else None,
                "reason": s.decision.reason if s.decision else "",
                "duration_us": round(s.duration_us, 1),
            }
            for s in self.stages
        ]


class Mediator:
    def __init__(self, authorize: Sequence[Guard], admit: Sequence[Guard]) -> None:
        self._authorize = tuple(authorize)
        self._admit = tuple(admit)

    def authorize(self, call: ProposedCall, context: CallContext) -> GateResult:
        """Scope, arguments and policy: whether the call may happen at all."""
        return _run(self._authorize, call, context)

    def admit(self, call: ProposedCall) -> GateResult:
        """Rate limits and circuit breakers: whether it may happen now."""
        return _run(self._admit, call, CallContext({}))

    def with_admission(self, admit: Sequence[Guard]) -> Mediator:
        """The same authorization stages, followed by ``admit`` before execution."""
        return Mediator(self._authorize, admit)


def _run(guards: Sequence[Guard], call: ProposedCall, ctx: CallContext) -> GateResult:
    outcomes: list[StageOutcome] = []
    allowed_by = Decision.allow(None, "every stage passed", stage="gate")
    for guard in guards:
        start = time.perf_counter()
        decision = guard.check(call, ctx)
        outcomes.append(StageOutcome(guard.stage, decision, (time.perf_counter() - start) * 1e6))
        if decision is None:
            continue
        if not decision.allowed:
            return GateResult(decision, tuple(outcomes))
        allowed_by = decision  # an explicit allow (a policy rule) is what the trace cites
    return GateResult(allowed_by, tuple(outcomes))
