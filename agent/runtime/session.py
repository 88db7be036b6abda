"""The fenced writes of one claimed run, and the typed trace steps they carry.

Every write a worker makes for a run goes through ``RunSession``: rows and steps are queued in
memory and saved by ``commit`` (or at the end of a ``transaction``), which first updates the run
row *only if* this worker still holds the lease under the same claim number. If another worker
has taken the run over, nothing is written and ``LeaseLost`` stops this one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agent.calls import Effect, Observation, ProposedCall
from agent.errors import LeaseLost
from agent.mediation.mediator import GateResult
from agent.planning.base import Turn
from agent.runtime.executor import Attempt
from agent.runtime.records import observation_to_json, redact, storable, storable_text
from agent.runtime.state import RunState
from storage.engine import write_connection
from storage.enums import ErrorClass, StepKind, StepStatus
from storage.tables import RUNS, STEPS
from storage.types import utcnow

Work = Callable[[sa.Connection], None]
"""Writes that ride a run's commit, given its connection inside the fenced transaction."""

_EFFECT_STATUS = {
    Effect.ALLOW: StepStatus.OK,
    Effect.ESCALATE: StepStatus.ESCALATED,
    Effect.DENY: StepStatus.DENIED,
}

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


def _insert(table: sa.Table) -> sa.Insert:
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS[table] = sa.insert(table)
    return statement


class RunSession:
    """Writes for one claimed run: queued rows and steps plus a fenced update of the run row.

    The runtime commits whenever a crash must not lose what happened (before a side-effecting
    call, after a call that could not be repeated, at every stop); what it ``defer``s can be
    redone safely. Everything is written with Core statements on one connection: the ORM would
    add a session, an identity map and a flush to every commit of every run for nothing.
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

    # -- queueing ---------------------------------------------------------------------------

    def insert(self, table: sa.Table, row: dict[str, Any]) -> None:
        """Queue a row for the next commit. Rows of one table must have the same keys."""
        self.rows.setdefault(table, []).append(row)

    def defer(self, work: Work | None = None) -> None:
        """Save ``work`` with the next commit instead of now (only what a crash may lose)."""
        if work is not None:
            self.deferred.append(work)

    # -- committing -------------------------------------------------------------------------

    def commit(self, work: Work | None = None, **run_fields: Any) -> None:
        """Save queued rows, deferred work, counters and ``run_fields`` atomically, if the lease
        is still ours.

        Raises:
            LeaseLost: another worker holds the run now; nothing was written.
        """
        with write_connection(self.engine) as connection:
            self._fence(connection, run_fields)
            self._flush(connection)
            if work is not None:
                work(connection)
        self._clear()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction fenced by the lease, for a decision that must be atomic with
        what it writes: the caller reads and writes on the connection yielded, then the run row
        is updated under the fence and everything queued by then (counters included) is saved
        before it commits. If the lease is gone by then, the whole transaction rolls back.

        On SQLite the transaction is ``BEGIN IMMEDIATE``: it excludes every other writer.

        Raises:
            LeaseLost: another worker holds the run now; nothing was written.
        """
        with write_connection(self.engine) as connection:
            yield connection
            self._fence(connection, {})
            self._flush(connection)
        self._clear()

    def _fence(self, connection: sa.Connection, run_fields: Mapping[str, Any]) -> None:
        state = self.state
        now = utcnow()
        values: dict[str, Any] = {
            "fence_id": state.run_id,
            "fence_owner": state.claim.owner,
            "fence_claims": state.claim.claim_no,
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
            **run_fields,
        }
        if self.root is not None:
            values["started_at"] = self.root["started_at"]
        if connection.execute(_FENCED_RUN_UPDATE, values).rowcount != 1:
            raise LeaseLost(f"run {state.run_id}: the lease of {state.claim.owner} is gone")

    def _clear(self) -> None:
        self.rows = {STEPS: []}
        self.deferred = []
        self.root = None

    def _flush(self, connection: sa.Connection) -> None:
        if self.root is not None:
            root_id = connection.execute(_ROOT_INSERT, self.root).scalar_one()
            for row in self.rows[STEPS]:
                row["parent_id"] = root_id
            self.state.root_step_id = root_id
        for table, rows in self.rows.items():
            if rows:
                connection.execute(_insert(table), rows)
        for deferred in self.deferred:
            deferred(connection)

    # -- the trace --------------------------------------------------------------------------

    def start(self, name: str, task: Mapping[str, Any], attributes: dict[str, Any]) -> None:
        """Queue the run's root step (``invoke_agent``); the next commit inserts it first and
        points the steps queued meanwhile at it."""
        self.state.step_count += 1
        self.root = {
            "run_id": self.state.run_id,
            "seq": self.state.step_count,
            "parent_id": None,
            "kind": StepKind.INVOKE_AGENT,
            "name": storable_text(name, 128),
            "call_id": None,
            "status": StepStatus.RUNNING,
            "error_class": None,
            "started_at": utcnow(),
            "ended_at": None,
            "duration_ms": None,
            "input": redact({"task": dict(task)}),
            "output": None,
            "attributes": storable(attributes),
        }

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
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        duration_ms: float | None = None,
    ) -> None:
        """Queue a step for the next commit; seq numbers are assigned in order. Documents are
        made storable here; hiding secrets (``redact``) is the caller's, which knows what is
        data and what is Steward's own bookkeeping (token counts are not secrets)."""
        self.state.step_count += 1
        now = utcnow()
        self.rows[STEPS].append(
            {
                "run_id": self.state.run_id,
                "seq": self.state.step_count,
                "parent_id": self.state.root_step_id,
                "kind": kind,
                "name": storable_text(name, 128),
                "call_id": call_id,
                "status": status,
                "error_class": error_class,
                "started_at": started_at or now,
                "ended_at": ended_at or now,
                "duration_ms": duration_ms if duration_ms is not None else 0.0,
                "input": storable(input) if input is not None else None,
                "output": storable(output) if output is not None else None,
                "attributes": storable(attributes or {}),
            }
        )

    def guardrail(
        self, call: ProposedCall, gates: Sequence[GateResult], *, note: str | None = None
    ) -> None:
        """Queue the ``apply_guardrail`` step of one decision on ``call``: every stage of every
        gate it went through (authorization, then admission), and the decision that counts: the
        refusal, if a gate refused it, else the authorization's (the rule that allowed it)."""
        decision = next((g.decision for g in gates if not g.decision.allowed), gates[0].decision)
        stages = [stage for gate in gates for stage in gate.trace()]
        output: dict[str, Any] = {
            "effect": decision.effect.value,
            "rule_id": decision.rule_id,
            "reason": decision.reason,
            "stage": decision.stage,
            "stages": stages,
        }
        if note:
            output["note"] = note
        authorization = decision.details.get("authorization")
        if authorization is not None:
            output["authorization"] = authorization
        policy = next(
            (
                s.decision.details["policy"]
                for gate in gates
                for s in gate.stages
                if s.decision is not None and "policy" in s.decision.details
            ),
            None,
        )
        if policy is not None:
            # Decision-time facts: the variables the rules read (secrets redacted), the rules
            # that matched and the policy's hash; what a replay of this decision starts from.
            output["policy"] = redact(policy)
        self.step(
            StepKind.APPLY_GUARDRAIL,
            call.tool,
            _EFFECT_STATUS[decision.effect],
            call_id=call.call_id,
            error_class=decision.error_class if decision.effect is Effect.DENY else None,
            # A planner's arguments may be anything (a list, a string): the trace keeps them as
            # proposed.
            input={"tool": call.tool, "args": redact(call.args)},
            output=output,
            attributes={
                "rule_id": decision.rule_id,
                "effect": decision.effect.value,
                "stage": decision.stage,
                "authorized": authorization is not None,
            },
            duration_ms=sum(s.duration_us for gate in gates for s in gate.stages) / 1000.0,
        )

    def observe(self, observation: Observation) -> None:
        """Queue an observation step and add it to the planner's history of its turn."""
        self.step(
            StepKind.OBSERVATION,
            observation.tool,
            StepStatus.OK if observation.status == "ok" else StepStatus.ERROR,
            call_id=observation.call_id,
            error_class=observation.error_class,
            output=observation_to_json(observation),
        )
        history = self.state.history
        for index in range(len(history) - 1, -1, -1):
            turn = history[index]
            if any(c.call_id == observation.call_id for c in turn.proposal.calls):
                history[index] = Turn(turn.proposal, (*turn.observations, observation))
                break

    def tool_attempt(self, call: ProposedCall, idempotency_key: str, attempt: Attempt) -> None:
        """Queue the ``execute_tool`` step of one attempt of ``call``."""
        self.step(
            StepKind.EXECUTE_TOOL,
            call.tool,
            StepStatus.OK if attempt.error_class is None else StepStatus.ERROR,
            call_id=call.call_id,
            error_class=attempt.error_class,
            input={"args": redact(call.args), "attempt": attempt.number},
            output={"error": attempt.error} if attempt.error else None,
            attributes={
                "attempt": attempt.number,
                "idempotency_key": idempotency_key,
                "health": attempt.health.value,
            },
            duration_ms=attempt.duration_ms,
        )

    def outcome_unknown(self, call: ProposedCall, why: str) -> None:
        """Queue the step saying nobody knows whether ``call`` took effect."""
        self.step(
            StepKind.EXECUTE_TOOL,
            call.tool,
            StepStatus.ERROR,
            call_id=call.call_id,
            error_class=ErrorClass.OUTCOME_UNKNOWN,
            output={"error": f"outcome unknown: {why}"},
        )
