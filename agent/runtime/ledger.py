"""The action ledger: every executed call is recorded, a side-effecting one before it runs.

A side-effecting call's ledger row is committed (with what it reserves against policy counters)
before the tool is invoked, under an idempotency key, so a crash can never make it run twice:
after a crash the row is still in flight, and ``recover`` retries the call only if repeating it
is harmless, otherwise it asks a person whether it took effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from agent.binding import args_hash
from agent.calls import Observation, ProposedCall
from agent.mediation.counters import CounterShare
from agent.platform import Platform
from agent.runtime.bundle import VersionBundle
from agent.runtime.escalation import Escalation
from agent.runtime.executor import Execution, execute
from agent.runtime.records import redact
from agent.runtime.session import RunSession, Work
from agent.tools.base import Fence, ToolContext
from agent.tools.validation import validate_result
from storage.engine import read_session
from storage.enums import ErrorClass, ToolCallStatus
from storage.models import ToolCall
from storage.queries.limits import RESERVATIONS, release
from storage.tables import REVIEWS
from storage.tables import TOOL_CALLS as LEDGER
from storage.types import utcnow

# Built once (see agent.runtime.session): the ledger is written for every call. Updates find a
# row by its idempotency key (unique) and take their SET columns from the parameters.
_LEDGER_FINISH = (
    sa.update(LEDGER)
    .where(LEDGER.c.idempotency_key == sa.bindparam("key"))
    .values(attempts=LEDGER.c.attempts + sa.bindparam("added_attempts"))
)
_LEDGER_SET = sa.update(LEDGER).where(LEDGER.c.idempotency_key == sa.bindparam("key"))
_REVIEW_APPLIED = sa.update(REVIEWS).where(REVIEWS.c.id == sa.bindparam("review_id"))


@dataclass(frozen=True)
class LedgerEntry:
    """One call as the ledger knows it; ``written`` when its row is already stored."""

    call: ProposedCall
    idempotency_key: str
    review_id: int | None
    written: bool = False

    @property
    def tool(self) -> str:
        return self.call.tool

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.call.args)


def mark_applied(review_id: int | None) -> Work:
    """The write that records a decided review as acted on (nothing for no review)."""

    def mark(connection: sa.Connection) -> None:
        if review_id is not None:
            connection.execute(_REVIEW_APPLIED, {"review_id": review_id, "applied_at": utcnow()})

    return mark


class Ledger:
    """Holds, executes, finishes and recovers one run's calls."""

    def __init__(
        self,
        platform: Platform,
        bundle: VersionBundle,
        run: RunSession,
        escalation: Escalation,
        *,
        inline_tools: bool = False,
    ) -> None:
        self.platform = platform
        self.bundle = bundle
        self.run = run
        self.state = run.state
        self.escalation = escalation
        self.inline_tools = inline_tools

    def entry(self, call: ProposedCall, review_id: int | None) -> LedgerEntry:
        """The ledger entry of an authorized call (its key is stable across retries and
        crashes: the run and the call id)."""
        return LedgerEntry(call, f"run{self.state.run_id}:{call.call_id}", review_id)

    def hold(self, entry: LedgerEntry, shares: Sequence[CounterShare]) -> LedgerEntry:
        """Queue the in-flight row of ``entry`` and its reservations for the next commit, which
        must happen before the tool runs (a crash after it says the call may have happened)."""
        self.run.insert(LEDGER, self._row(entry))
        for share in shares:
            self.run.insert(
                RESERVATIONS,
                {
                    "counter_key": share.key,
                    "counter": share.counter,
                    "agent_id": self.state.agent_id,
                    "run_id": self.state.run_id,
                    "call_id": entry.call.call_id,
                    "idempotency_key": entry.idempotency_key,
                    "amount": share.amount,
                    "created_at": utcnow(),
                    "released_at": None,
                },
            )
        return LedgerEntry(entry.call, entry.idempotency_key, entry.review_id, written=True)

    def execute(self, entry: LedgerEntry) -> Execution:
        """Call the tool, bounded by the call timeout and what is left of the run's deadline."""
        budgets = self.bundle.version.spec.budgets
        claim = self.state.claim
        context = ToolContext(
            run_id=self.state.run_id,
            idempotency_key=entry.idempotency_key,
            timeout_s=budgets.call_timeout_s,
            engine=self.platform.records_engine,
            # A sandbox holds no runs to check a claim against; only its evaluation drives it.
            fence=(
                Fence(claim.run_id, claim.owner, claim.claim_no)
                if self.platform.sandbox is None
                else None
            ),
        )
        return execute(
            self.bundle.tools[entry.tool],
            entry.args,
            context,
            retries=self.bundle.version.spec.retries,
            pool=self.platform.tool_pool,
            time_left_s=self.state.time_left_s(budgets),
            inline=self.inline_tools,
        )

    def finish(self, entry: LedgerEntry, execution: Execution) -> None:
        """Record the attempts, the ledger outcome and the observation in one commit (or with
        the next one, when a crash losing them would only make the call be made again)."""
        spec = self.bundle.version.tool_specs[entry.tool]
        for attempt in execution.attempts:
            self.run.tool_attempt(entry.call, entry.idempotency_key, attempt)
        # The call, not each attempt, tells the breaker about the tool's health; the input's
        # hash lets one bad input fail again without taking the tool from everyone.
        self.bundle.breakers.record(
            entry.tool,
            execution.health,
            execution.error_class,
            input_key=args_hash(entry.args),
        )
        result = redact(execution.result) if execution.result is not None else None
        if execution.ok and result is not None:
            status = ToolCallStatus.SUCCEEDED
            problems = validate_result(spec, execution.result)
            if problems:
                self.state.consecutive_failures += 1
                message = "the result does not match the tool's contract: " + "; ".join(
                    problems[:3]
                )
                self._observe(entry, "error", {"message": message}, ErrorClass.TOOL_ERROR)
            else:
                self.state.consecutive_failures = 0
                self.state.tally.add(entry.tool, entry.args)
                self._observe(entry, "ok", result)
        elif (
            execution.error_class is ErrorClass.TOOL_TIMEOUT
            and spec.has_side_effects
            and not spec.idempotent
        ):
            status = ToolCallStatus.OUTCOME_UNKNOWN
            self.run.outcome_unknown(entry.call, execution.error or "timed out")
            self.escalation.outcome_unknown(
                entry.call, execution.error or "timed out", parent_id=entry.review_id
            )
        else:
            status = ToolCallStatus.FAILED
            self.state.consecutive_failures += 1
            message = execution.error or "failed"
            self._observe(entry, "error", {"message": message}, execution.error_class)
        outcome = {
            "status": status,
            "result": result,
            "error_class": execution.error_class,
            "error_message": (execution.error or "")[:2000] or None,
            "duration_ms": execution.duration_ms,
            "finished_at": utcnow(),
        }
        attempts = len(execution.attempts)
        counted = bool(self.bundle.version.counters.counting(entry.tool))
        if entry.written:

            def save(connection: sa.Connection) -> None:
                connection.execute(
                    _LEDGER_FINISH,
                    {"key": entry.idempotency_key, "added_attempts": attempts, **outcome},
                )
                if counted and status is ToolCallStatus.FAILED:
                    release(connection, entry.idempotency_key)  # it did not take effect

            self.run.defer(save)
        else:  # a read: its ledger row is written once, now, with its outcome
            self.run.insert(LEDGER, self._row(entry, attempts=attempts, **outcome))
        if status is not ToolCallStatus.OUTCOME_UNKNOWN and spec.repeatable:
            # A read, or a write the tool dedupes by its idempotency key: if a crash loses this
            # record, the recovered run simply makes the call again with the same key.
            return
        self.run.commit()

    def recover(self) -> bool:
        """Act on ledger rows a crashed worker left in flight: retry the calls that are safe to
        repeat, ask a person about the others. Returns whether a person was asked."""
        with read_session(self.platform.engine) as session:
            rows = session.exec(
                select(ToolCall)
                .where(col(ToolCall.run_id) == self.state.run_id)
                .where(col(ToolCall.status) == ToolCallStatus.IN_FLIGHT)
                .order_by(col(ToolCall.id))
            ).all()
        asked = False
        for row in rows:
            entry = LedgerEntry(
                ProposedCall(row.call_id, row.tool, dict(row.args)),
                row.idempotency_key,
                row.review_id,
                written=True,
            )
            tool = self.bundle.tools.get(entry.tool)
            if tool is not None and tool.spec.repeatable:
                self.finish(entry, self.execute(entry))
                continue
            why = "the worker stopped while it was running"
            self.run.outcome_unknown(entry.call, why)
            self.escalation.outcome_unknown(entry.call, why, parent_id=entry.review_id)
            self.run.commit(self._set(entry, ToolCallStatus.OUTCOME_UNKNOWN))
            asked = True
        return asked

    def verified(self, call: ProposedCall, happened: bool, who: str, note: str) -> Work:
        """What a person found about a call whose outcome was unknown, as the ledger's write;
        a call found not to have happened gives back what it reserved."""
        key = f"run{self.state.run_id}:{call.call_id}"
        if happened:
            self.state.consecutive_failures = 0
            self.state.tally.add(call.tool, call.args)

        def save(connection: sa.Connection) -> None:
            connection.execute(
                _LEDGER_SET,
                {
                    "key": key,
                    "status": ToolCallStatus.SUCCEEDED if happened else ToolCallStatus.FAILED,
                    "result": {"verified_by": who, "note": note} if happened else None,
                },
            )
            if not happened:
                release(connection, key)

        return save

    def _set(self, entry: LedgerEntry, status: ToolCallStatus) -> Work:
        def save(connection: sa.Connection) -> None:
            connection.execute(
                _LEDGER_SET,
                {
                    "key": entry.idempotency_key,
                    "status": status,
                    "error_class": ErrorClass.OUTCOME_UNKNOWN,
                    "finished_at": utcnow(),
                },
            )

        return save

    def _observe(
        self,
        entry: LedgerEntry,
        status: str,
        content: dict[str, Any],
        error_class: ErrorClass | None = None,
    ) -> None:
        self.run.observe(Observation(entry.call.call_id, entry.tool, status, content, error_class))

    def _row(self, entry: LedgerEntry, **columns: Any) -> dict[str, Any]:
        """A complete ledger row, in flight unless ``columns`` say otherwise (every column is
        present, so the rows of one commit batch into one ``executemany``)."""
        spec = self.bundle.version.tool_specs[entry.tool]
        args = redact(entry.args)
        row: dict[str, Any] = {
            "run_id": self.state.run_id,
            "step_id": None,
            "review_id": entry.review_id,
            "call_id": entry.call.call_id,
            "tool": entry.tool,
            "idempotency_key": entry.idempotency_key,
            "args": args,
            "args_hash": args_hash(args),
            "side_effect": spec.side_effect,
            "idempotent": spec.idempotent,
            "status": ToolCallStatus.IN_FLIGHT,
            "attempts": 0,
            "result": None,
            "error_class": None,
            "error_message": None,
            "created_at": utcnow(),
            "finished_at": None,
            "duration_ms": None,
        }
        row.update(columns)
        return row
