"""A run's working state while one worker holds its lease: counters, history and budgets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agent.mediation.variables import CallTally, RunFigures
from agent.planning.base import Turn
from agent.spec import BudgetSpec


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one run: the run, the claim number that fences its writes, the owner.

    ``fresh`` marks a run this claim created: it has no steps, calls or reviews to recover yet,
    and the claim carries what loading it would read (so a new run costs no extra query).
    """

    run_id: int
    claim_no: int
    owner: str
    fresh: bool = False
    task_id: int = 0
    agent_id: int = 0
    version_id: int = 0
    task_input: dict[str, Any] | None = None


@dataclass
class RunState:
    """What the run loop knows of its run; the counters are saved with every fenced commit."""

    claim: Claim
    task_id: int
    agent_id: int
    version_id: int
    task: dict[str, Any]
    step_count: int = 0
    planner_turns: int = 0
    denial_count: int = 0
    rejection_count: int = 0
    consecutive_failures: int = 0
    agent_time_ms: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    root_step_id: int | None = None
    # Whether a review of this run is open: read when the run is loaded, set when this loop
    # opens one (only the worker holding the lease opens reviews of its run).
    reviews_open: bool = False
    history: list[Turn] = field(default_factory=list)
    tally: CallTally = field(default_factory=CallTally)
    segment_started: float = field(default_factory=time.perf_counter)

    @property
    def run_id(self) -> int:
        return self.claim.run_id

    def elapsed_agent_ms(self) -> float:
        """Agent time so far: earlier segments plus this one (time waiting for people is not
        agent time)."""
        return self.agent_time_ms + (time.perf_counter() - self.segment_started) * 1000.0

    def time_left_s(self, budgets: BudgetSpec) -> float:
        """What is left of the run's deadline, in seconds (never negative)."""
        return max(budgets.run_deadline_s - self.elapsed_agent_ms() / 1000.0, 0.0)

    def figures(self) -> RunFigures:
        """The counters policy conditions see as ``run``."""
        return RunFigures(
            self.run_id,
            steps=self.step_count,
            turns=self.planner_turns,
            denials=self.denial_count,
            rejections=self.rejection_count,
        )

    def exhausted(self, budgets: BudgetSpec) -> str | None:
        """Which budget the run has used up, in words, or None. Checked before every call,
        not only every turn: a turn may propose many calls."""
        if self.step_count >= budgets.max_steps:
            return f"the run used its {budgets.max_steps} steps"
        if self.elapsed_agent_ms() > budgets.run_deadline_s * 1000:
            return f"the run passed its {budgets.run_deadline_s:g} s deadline"
        if self.denial_count > budgets.max_denials:
            return f"{self.denial_count} calls were denied (budget {budgets.max_denials})"
        if self.rejection_count > budgets.max_rejections:
            return f"{self.rejection_count} calls were rejected (budget {budgets.max_rejections})"
        if self.consecutive_failures >= budgets.max_consecutive_failures:
            return (
                f"{self.consecutive_failures} failures in a row (budget "
                f"{budgets.max_consecutive_failures})"
            )
        return None

    def turns_exhausted(self, budgets: BudgetSpec) -> str | None:
        """Which budget forbids asking the planner for another turn, in words, or None."""
        if self.planner_turns >= budgets.max_planner_turns:
            return f"the planner used its {budgets.max_planner_turns} turns"
        return self.exhausted(budgets)
