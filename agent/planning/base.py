"""The planning layer's interface: run context in, proposal out. A planner never touches a tool.

The context is rebuilt from the trace on every turn, so a planner holds no state of its own
between turns and a run resumed by another worker plans exactly as the first one would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.calls import Observation, ProposedCall
from agent.tools.base import ToolSpec


@dataclass(frozen=True)
class TokenUsage:
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Proposal:
    """A planner's answer for one turn: reasoning, and tool calls or a final answer (not both)."""

    reasoning: str
    calls: tuple[ProposedCall, ...] = ()
    final_answer: Mapping[str, Any] | None = None
    usage: TokenUsage | None = None
    # Set when the planner itself failed (malformed model output, refusal...): the runtime
    # records it as a planner_error observation instead of crashing.
    error: str | None = None
    # How the proposal was produced (model latency, attempts, finish reason), for the proposal
    # step's attributes; planners that call nothing leave it empty. Never holds secrets.
    telemetry: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def final(cls, reasoning: str, answer: Mapping[str, Any]) -> Proposal:
        return cls(reasoning=reasoning, final_answer=answer)

    @classmethod
    def tool_calls(cls, reasoning: str, *calls: ProposedCall) -> Proposal:
        return cls(reasoning=reasoning, calls=calls)

    @classmethod
    def failed(cls, error: str) -> Proposal:
        return cls(reasoning="", error=error)


@dataclass(frozen=True)
class Turn:
    """One completed planning turn: what was proposed and what each call came back with."""

    proposal: Proposal
    observations: tuple[Observation, ...] = ()


@dataclass(frozen=True)
class RunContext:
    """Everything a planner may look at to propose the next step."""

    run_id: int
    task_id: int
    agent: str
    task: Mapping[str, Any]
    tools: Sequence[ToolSpec]
    history: Sequence[Turn] = ()
    planner_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def turn(self) -> int:
        """0-based index of the turn being planned."""
        return len(self.history)

    def observations(self) -> list[Observation]:
        return [o for t in self.history for o in t.observations]

    def last_ok(self, tool: str) -> Mapping[str, Any] | None:
        """The content of the most recent successful call of ``tool``, if any."""
        for obs in reversed(self.observations()):
            if obs.tool == tool and obs.status == "ok":
                return obs.content
        return None


class Planner(Protocol):
    """Turns a run context into the next proposal. Must be deterministic for a given context
    unless it calls a model; never raises for model or parsing trouble (returns
    ``Proposal.failed``)."""

    def propose(self, context: RunContext) -> Proposal: ...
