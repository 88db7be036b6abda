"""The planner of an undo run: it proposes the one compensating call its task carries, then
answers with what became of it. It decides nothing: the call goes through the gate like any
other, and the answer says only what the ledger says (an attempt, not proof of a reversal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.calls import ProposedCall
from agent.planning.base import Proposal, RunContext


class CompensationPlanner:
    """Proposes ``task[key]``'s call under ``call_id``, then a final answer about it."""

    def __init__(self, key: str, call_id: str) -> None:
        self.key = key
        self.call_id = call_id

    def propose(self, context: RunContext) -> Proposal:
        undo: Mapping[str, Any] = context.task[self.key]
        original = f"call {undo['call']} of run {undo['run']}"
        if context.turn == 0:
            return Proposal.tool_calls(
                f"Undo {original} with {undo['tool']}: {undo['reason']}",
                ProposedCall(self.call_id, str(undo["tool"]), dict(undo["args"])),
            )
        outcome = next(
            (o for o in context.observations() if o.call_id == self.call_id),
            None,
        )
        if outcome is not None and outcome.status == "ok":
            return Proposal.final(
                "The compensating call ran.",
                {
                    "resolution": "resolved",
                    "summary": f"Attempted the undo of {original}: {undo['tool']} ran and "
                    "succeeded; check the system of record for the effect.",
                },
            )
        said = outcome.as_text() if outcome is not None else "it was not made"
        return Proposal.final(
            "The compensating call did not run.",
            {
                "resolution": "declined",
                "summary": f"The undo of {original} did not run: {said}"[:2000],
            },
        )
