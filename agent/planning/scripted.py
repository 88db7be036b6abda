"""The scripted planner: proposes exactly what the version's ``planner.script`` lists, turn by turn.

Shipped for tests and for replaying incidents: a recorded run's proposals become a script, and
the same governance decides them again without a model. Each script entry is one turn::

    - reasoning: Look up the order first.
      calls: [{tool: lookup_order, args: {order_id: O-1001}}]
    - reasoning: Done.
      final: {resolution: refunded, summary: Refunded $40.}
    - error: the model returned garbage        # a planner failure, for fault tests
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.calls import ProposedCall
from agent.planning.base import Proposal, RunContext, TokenUsage
from agent.spec import PlannerSpec


class ScriptedPlanner:
    def __init__(self, spec: PlannerSpec) -> None:
        self.script: tuple[Mapping[str, Any], ...] = spec.script
        self.model = spec.model or "scripted"

    def propose(self, context: RunContext) -> Proposal:
        turn = context.turn
        if turn >= len(self.script):
            return Proposal.failed(
                f"the script has {len(self.script)} turns and turn {turn + 1} was requested"
            )
        entry = self.script[turn]
        if "error" in entry:
            return Proposal.failed(str(entry["error"]))
        reasoning = str(entry.get("reasoning", ""))
        usage = TokenUsage(
            model=self.model,
            prompt_tokens=int(entry.get("prompt_tokens", 0)),
            completion_tokens=int(entry.get("completion_tokens", 0)),
        )
        if "final" in entry:
            final = entry["final"]
            answer = dict(final) if isinstance(final, Mapping) else {"answer": final}
            return Proposal(reasoning=reasoning, final_answer=answer, usage=usage)
        calls = tuple(
            ProposedCall(
                call_id=str(call.get("id", f"t{turn}c{i}")),
                tool=str(call.get("tool", "")),
                args=dict(call.get("args") or {})
                if isinstance(call.get("args"), Mapping)
                else call.get("args"),  # malformed on purpose in tests
            )
            for i, call in enumerate(entry.get("calls", ()))
        )
        if not calls:
            return Proposal.failed(f"script turn {turn + 1} has neither calls nor a final answer")
        return Proposal(reasoning=reasoning, calls=calls, usage=usage)
