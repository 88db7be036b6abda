"""The one builder of what policy conditions see, fed from a run's state.

The run loop deciding a proposed call, the worker re-deciding an approved one and the review
service dry-running an edit all build a decision's variables here, from the same run counters
and the same tally of executed calls, so a condition cannot read one thing in a run and another
in a review.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CallTally:
    """How often each tool ran successfully in a run, and the sums of its numeric arguments."""

    calls: dict[str, int] = field(default_factory=dict)
    sums: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, executed: Iterable[tuple[str, Any]]) -> CallTally:
        """The tally of ``(tool, args)`` pairs of calls that took effect."""
        tally = cls()
        for tool, args in executed:
            tally.add(tool, args)
        return tally

    def add(self, tool: str, args: Any) -> None:
        """Count one call of ``tool`` that took effect."""
        self.calls[tool] = self.calls.get(tool, 0) + 1
        if isinstance(args, Mapping):
            sums = self.sums.setdefault(tool, {})
            for key, value in args.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    sums[str(key)] = sums.get(str(key), 0.0) + float(value)


@dataclass(frozen=True)
class RunFigures:
    """A run's counters as the runs table keeps them."""

    run_id: int
    steps: int = 0
    turns: int = 0
    denials: int = 0
    rejections: int = 0


def decision_variables(
    args: Mapping[str, Any],
    task: Mapping[str, Any],
    run: RunFigures,
    tally: CallTally,
    agent: Mapping[str, Any],
) -> dict[str, Any]:
    """The variables of a decision on one call: ``args``, ``task``, ``run`` and ``agent``
    (``facts`` and ``counters`` are loaded by the policy stage, only when a rule reads them).
    """
    return {
        "args": dict(args),
        "task": dict(task),
        "run": {
            "id": run.run_id,
            "steps": run.steps,
            "turns": run.turns,
            "denials": run.denials,
            "rejections": run.rejections,
            "calls": dict(tally.calls),
            "sums": {tool: dict(sums) for tool, sums in tally.sums.items()},
        },
        "agent": dict(agent),
    }
