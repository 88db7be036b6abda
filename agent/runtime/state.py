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

from agent.errors import LeaseLost
from agent.planning.base import Turn
from storage.engine import write_connection
from storage.enums import ErrorClass, StepKind, StepStatus
from storage.tables import RUNS, STEPS
from storage.types import utcnow


@dataclass(frozen=True)
class Claim:
    run_id: int
    claim_no: int
    owner: str
    # The run was created by this claim: it has no steps, calls or reviews to recover yet, and
    # the claim carries what loading it would read (so a new run costs no extra query).
    fresh: bool = False
    task_id: int = 0
    agent_id: int = 0
    version_id: int = 0
    task_input: dict[str, Any] | None = None


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
    # Whether a review of this run is open: read when the run is loaded, set when this loop
    # opens one (only the worker holding the lease opens reviews of its run).
    reviews_open: bool = False
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


# Built once: constructing SQLAlchemy expressions costs more than executing them, and these
# statements run for every commit of every run. The run update takes its SET columns from the
# parameters; the ``fence_*`` names keep the WHERE parameters apart from the columns.
_FENCED_RUN_UPDATE = (
    sa.update(RUNS)
    .where(RUNS.c.id == sa.bindparam("fence_id"))
    .where(RUNS.c.lease_owner == sa.bindparam("fence_owner"))
    .where(RUNS.c.claims == sa.bindparam("fence_claims"))
)
_ROOT_INSERT = sa.insert(STEPS).returning(STEPS.c.id)
_INSERTS: dict[sa.Table, sa.Insert] = {}

Work = Callable[[sa.Connection], None]
"""Writes that ride a run's commit, given its connection inside the fenced transaction."""


def _insert(table: sa.Table) -> sa.Insert:
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS[table] = sa.insert(table)
    return statement


class RunSession:
    """Writes for one claimed run: buffered rows plus a fenced update of the run row.

    Steps, other queued rows and ``defer``-red work wait in memory until the next ``commit``.
    The runtime commits whenever a crash must not lose what happened (before a side-effecting
    call, after a call that could not be repeated, at every stop); what it defers can be redone
    safely. Everything is written with Core statements on one connection: the ORM would add a
    session, an identity map and a flush to every commit of every run for nothing.
    """

    def __init__(self, engine: Engine, state: RunState, lease_s: float) -> None:
        self.engine = engine
        self.state = state
        self.lease_s = lease_s
        # Rows to insert at the next commit, by table, in the order tables were first used
        # (steps first); each table's rows go in one ``executemany``.
        self.rows: dict[sa.Table, list[dict[str, Any]]] = {STEPS: []}
        self.deferred: list[Work] = []
        self.root: dict[str, Any] | None = None

    def start(self, root: dict[str, Any]) -> None:
        """Queue the run's root step (``invoke_agent``); the next commit inserts it first and
        points the steps queued meanwhile at it."""
        self.state.step_count += 1
        self.root = {**root, "run_id": self.state.run_id, "seq": self.state.step_count}

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
    ) -> None:
        """Queue a step for the next commit; seq numbers are assigned in order."""
        self.state.step_count += 1
        now = utcnow()
        self.rows[STEPS].append(
            {
                "run_id": self.state.run_id,
                "seq": self.state.step_count,
                "parent_id": self.state.root_step_id,
                "kind": kind,
                "name": name[:128],
                "call_id": call_id,
                "status": status,
                "error_class": error_class,
                "started_at": started_at or now,
                "ended_at": ended_at or now,
                "duration_ms": duration_ms if duration_ms is not None else 0.0,
                "input": input,
                "output": output,
                "attributes": attributes or {},
            }
        )

    def insert(self, table: sa.Table, row: dict[str, Any]) -> None:
        """Queue a row for the next commit. Rows of one table must have the same keys."""
        self.rows.setdefault(table, []).append(row)

    def defer(self, work: Work | None = None) -> None:
        """Save ``work`` with the next commit instead of now (only what a crash may lose)."""
        if work is not None:
            self.deferred.append(work)

    def commit(self, work: Work | None = None, **run_fields: Any) -> None:
        """Save queued rows, deferred work, counters and ``run_fields`` atomically, if the lease
        is still ours."""
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
        if self.root is not None:
            values["started_at"] = self.root["started_at"]
        values.update(run_fields)
        with write_connection(self.engine) as connection:
            result = connection.execute(
                _FENCED_RUN_UPDATE,
                {
                    "fence_id": state.run_id,
                    "fence_owner": state.claim.owner,
                    "fence_claims": state.claim.claim_no,
                    **values,
                },
            )
            if result.rowcount != 1:
                raise LeaseLost(f"run {state.run_id}: the lease of {state.claim.owner} is gone")
            if self.root is not None:
                root_id = connection.execute(_ROOT_INSERT, self.root).scalar_one()
                for row in self.rows[STEPS]:
                    row["parent_id"] = root_id
                state.root_step_id = root_id
            for table, rows in self.rows.items():
                if rows:
                    connection.execute(_insert(table), rows)
            for deferred in self.deferred:
                deferred(connection)
            if work is not None:
                work(connection)
        self.rows = {STEPS: []}
        self.deferred = []
        self.root = None
