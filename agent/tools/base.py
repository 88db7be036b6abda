"""The one tool interface shared by Python tools and declarative HTTP tools.

A tool is a ``ToolSpec`` (what the mediation layer needs to govern it) plus ``call``. Tools
never see policy: by the time ``call`` runs, the call was scoped, validated and authorized.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.engine import Engine

from storage.enums import SideEffect


@dataclass(frozen=True)
class ToolSpec:
    """What a tool is, for the planner (description, argument schema) and for governance."""

    name: str
    description: str
    args_schema: Mapping[str, Any]
    result_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    side_effect: SideEffect = SideEffect.READ
    idempotent: bool = True
    data_sources: tuple[str, ...] = ()
    compensating_tool: str | None = None
    # Run in the worker's own thread, without a hand-off to the timeout pool: only for fast
    # in-process tools whose every wait has its own bound, since the executor cannot then cut
    # the call at the version's call timeout. A tool that may hang must leave this off.
    inline: bool = False
    # Undo: the compensating call's arguments, each a CEL expression over ``args`` (the
    # original call's arguments) and ``result`` (what it returned); none: the same arguments.
    compensation_args: Mapping[str, str] = field(default_factory=dict)
    # Why a side-effecting tool with no compensating tool cannot be undone, told to whoever
    # asks to undo one of its calls.
    not_undoable_because: str = ""

    @property
    def has_side_effects(self) -> bool:
        return self.side_effect is not SideEffect.READ

    @property
    def repeatable(self) -> bool:
        """Whether calling again with the same idempotency key is harmless (reads, idempotent
        writes): the runtime may then lose the record of a call in a crash and redo it."""
        return not self.has_side_effects or self.idempotent

    def function_definition(self) -> dict[str, Any]:
        """The OpenAI-style function definition a chat planner sends to a model."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.args_schema),
            },
        }


@dataclass(frozen=True)
class Fence:
    """The claim a call runs under. A worker paused past its lease may wake up inside a tool;
    a write made under a claim that is no longer current must not happen (see
    ``agent.tools.fencing``).

    Attributes:
        run_id: the run.
        owner: the worker holding it.
        claim_no: the claim number, which grows with every claim of the run: a monotonic
            fencing token for systems outside Steward's database.
    """

    run_id: int
    owner: str
    claim_no: int

    @property
    def token(self) -> str:
        """``<run>:<claim>``, sent to HTTP services as the ``Steward-Fencing-Token`` header."""
        return f"{self.run_id}:{self.claim_no}"


@dataclass(frozen=True)
class ToolContext:
    """What the executor hands a tool for one attempt of one call.

    Attributes:
        run_id: the run the call belongs to.
        idempotency_key: stable across retries and restarts; side-effecting tools that claim to
            be idempotent must use it to make a repeated call a no-op.
        timeout_s: the time bound for this attempt.
        engine: the database, for tools backed by a system of record in it.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        fence: the claim the call runs under (None outside a run, e.g. in a benchmark).
        cancelled: set when the runtime stopped waiting for this attempt (its timeout passed):
            the attempt must not write anything after that.
    """

    run_id: int
    idempotency_key: str
    timeout_s: float
    engine: Engine
    attempt: int = 1
    fence: Fence | None = None
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False)


@runtime_checkable
class Tool(Protocol):
    """A callable capability. Raise ``agent.errors.ToolError`` (or ``ToolTimeout``) to fail."""

    @property
    def spec(self) -> ToolSpec: ...

    def call(self, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]: ...
