"""A run's working state while one worker holds its lease, and the fenced commit that saves it.

Every write a worker makes for a run goes through ``RunSession.commit``, which first updates
the run row *only if* this worker still holds the lease under the same claim number. If another
worker has taken the run over, nothing is written and ``LeaseLost`` stops this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from agent.errors import LeaseLost
from agent.planning.base import Turn
from storage.engine import write_session
from storage.enums import ErrorClass, StepKind, StepStatus
from storage.models import Run, Step
from storage.types import utcnow


@dataclass(frozen=True)
class Claim:
    run_id: int
    claim_no: int
    owner: str


@dataclass
class RunState:
    claim: Claim
    task_id: int
    agent_id: int
    version_id: int
    task: dict[str, Any]
    step_count: int
    planner_turns: int
    denial_count: int
    rejection_count: int
    consecutive_failures: int
    agent_time_ms: float
    tokens_in: int
    tokens_out: int
    cost_usd: float
    root_step_id: int | None = None
    history: list[Turn] = field(default_factory=list)
    call_counts: dict[str, int] = field(default_factory=dict)
    arg_sums: dict[str, dict[str, float]] = field(default_factory=dict)
    segment_started: float = field(default_factory=time.perf_counter)

    @property
    def run_id(self) -> int:
        return self.claim.run_id

    def elapsed_agent_ms(self) -> float:
        return self.agent_time_ms + (time.perf_counter() - self.segment_started) * 1000.0

    def run_variables(self) -> dict[str, Any]:
        """What policy conditions see as ``run``."""
        return {
            "id": self.run_id,
            "steps": self.step_count,
            "turns": self.planner_turns,
            "denials": self.denial_count,
            "rejections": self.rejection_count,
            "calls": dict(self.call_counts),
            "sums": {tool: dict(sums) for tool, sums in self.arg_sums.items()},
        }

    def count_success(self, tool: str, args: Any) -> None:
        self.call_counts[tool] = self.call_counts.get(tool, 0) + 1
        if isinstance(args, dict):
            sums = self.arg_sums.setdefault(tool, {})
            for key, value in args.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    sums[key] = sums.get(key, 0.0) + float(value)


class RunSession:
    """Writes for one claimed run: buffered steps plus a fenced update of the run row."""

    def __init__(self, engine: Engine, state: RunState, lease_s: float) -> None:
        self.engine = engine
        self.state = state
        self.lease_s = lease_s
        self.pending: list[Step] = []

    def step(
        self,
        kind: StepKind,
        name: str,
        status: StepStatus,
        *,
        call_id: str | None = None,
        error_class: ErrorClass | None = None,
        input: dict[str, Any] | None = None,
        output: dict[str, Any] | None = None,
        attributes: dict[str, Any] | None = None,
        started_at: Any = None,
        ended_at: Any = None,
        duration_ms: float | None = None,
    ) -> Step:
        """Queue a step for the next commit; seq numbers are assigned in order."""
        self.state.step_count += 1
        now = utcnow()
        step = Step(
            run_id=self.state.run_id,
            seq=self.state.step_count,
            parent_id=self.state.root_step_id,
            kind=kind,
            name=name[:128],
            status=status,
            call_id=call_id,
            error_class=error_class,
            started_at=started_at or now,
            ended_at=ended_at or now,
            duration_ms=duration_ms if duration_ms is not None else 0.0,
            input=input,
            output=output,
            attributes=attributes or {},
        )
        self.pending.append(step)
        return step

    def commit(self, work: Callable[[Session], None] | None = None, **run_fields: Any) -> None:
        """Save queued steps, counters and ``run_fields`` atomically, if the lease is still ours."""
        state = self.state
        now = utcnow()
        values: dict[str, Any] = {
            "step_count": state.step_count,
            "planner_turns": state.planner_turns,
            "denial_count": state.denial_count,
            "rejection_count": state.rejection_count,
            "consecutive_failures": state.consecutive_failures,
            "agent_time_ms": state.elapsed_agent_ms(),
            "tokens_in": state.tokens_in,
            "tokens_out": state.tokens_out,
            "cost_usd": state.cost_usd,
            "heartbeat_at": now,
            "lease_expires_at": now + timedelta(seconds=self.lease_s),
        }
        values.update(run_fields)
        with write_session(self.engine) as session:
            result = session.execute(
                sa.update(Run)
                .where(col(Run.id) == state.run_id)
                .where(col(Run.lease_owner) == state.claim.owner)
                .where(col(Run.claims) == state.claim.claim_no)
                .values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLost(f"run {state.run_id}: the lease of {state.claim.owner} is gone")
            session.add_all(self.pending)
            if work is not None:
                work(session)
        self.pending = []
