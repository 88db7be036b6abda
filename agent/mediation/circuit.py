"""Circuit breakers per tool, stored in the database so every worker fails fast together.

A breaker counts only calls that say the tool's service is unhealthy (``Health.UNHEALTHY``),
and an input that keeps failing while other inputs succeed only once, so neither an error
about one call's input nor one order that fails on every run takes a tool away from everyone.
Every way a half-open trial can end settles the breaker, and the trial slot lives in the
database with the time it was taken: a trial that never reports back (its worker died, lost
the run or failed to commit) frees the slot after ``reset_after_s``, so a breaker always
recovers, with one worker process or many.

Each process keeps a view of the breakers refreshed at most once a second, so the common case
(closed circuit) costs no query; state changes are written through at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from agent.errors import Health
from agent.spec import CircuitSpec
from storage.engine import read_session, write_session
from storage.enums import CircuitState, ErrorClass
from storage.models import CircuitBreaker
from storage.tables import table
from storage.types import utcnow

REFRESH_S = 1.0
# How many failing inputs per tool a process remembers; one forgotten only counts once more.
REMEMBERED_INPUTS = 1024

BREAKERS = table(CircuitBreaker)

# One statement, so that of several workers asking at once exactly one takes the trial: an
# open circuit whose pause is over, or a half-open one whose slot is free or was taken so long
# ago (``expired``) that its trial is presumed lost.
_TAKE_TRIAL = (
    sa.update(BREAKERS)
    .where(BREAKERS.c.tool == sa.bindparam("breaker"))
    .where(
        sa.or_(
            sa.and_(
                BREAKERS.c.state == CircuitState.OPEN,
                sa.or_(
                    BREAKERS.c.opened_at.is_(None),
                    BREAKERS.c.opened_at <= sa.bindparam("expired"),
                ),
            ),
            sa.and_(
                BREAKERS.c.state == CircuitState.HALF_OPEN,
                sa.or_(
                    BREAKERS.c.trial_started_at.is_(None),
                    BREAKERS.c.trial_started_at <= sa.bindparam("expired"),
                ),
            ),
        )
    )
    .values(
        state=CircuitState.HALF_OPEN,
        trial_started_at=sa.bindparam("taken_at"),
        updated_at=sa.bindparam("taken_at"),
    )
)
_FREE_TRIAL = (
    sa.update(BREAKERS)
    .where(BREAKERS.c.tool == sa.bindparam("breaker"))
    .where(BREAKERS.c.state == CircuitState.HALF_OPEN)
    .values(trial_started_at=None, updated_at=sa.bindparam("freed_at"))
)


class _Evidence:
    """What this process saw of one tool's calls lately: the outcomes the failure rate is
    taken over, and which inputs failed, to tell a bad input from a failing service."""

    def __init__(self, window: int) -> None:
        self.outcomes: deque[bool] = deque(maxlen=window)  # True: a counted failure
        self._tick = 0  # orders what happened; a sequence number, not a time
        # input -> tick of its last counted failure, for inputs that have not succeeded since
        self._failed: OrderedDict[str, int] = OrderedDict()
        # The latest success of the two most recently successful distinct inputs, newest
        # first: enough to know whether any input other than a given one succeeded since.
        self._succeeded: list[tuple[str, int]] = []

    def succeeded(self, input_key: str) -> None:
        self._tick += 1
        self._failed.pop(input_key, None)  # it works now: no longer a suspect
        others = [entry for entry in self._succeeded if entry[0] != input_key]
        self._succeeded = [(input_key, self._tick), *others[:1]]
        self.outcomes.append(False)

    def failed(self, input_key: str) -> bool:
        """Note an unhealthy failure of ``input_key``; whether it counts against the tool.

        It does not count when the input's last counted failure was followed by a success of
        another input: the service answers, so this input is the trouble and its failures say
        nothing new about the service. Until another input succeeds nothing tells a bad input
        from a failing service, so a tool that only ever sees one input (one without
        arguments) counts each of its failures.
        """
        counted = self._failed.get(input_key)
        if counted is not None and any(
            key != input_key and tick > counted for key, tick in self._succeeded
        ):
            return False
        self._tick += 1
        self._failed[input_key] = self._tick
        # Bounded by hand, least recently counted first out: the standard library has no
        # bounded mapping (functools.lru_cache bounds a function's results, not a dict).
        self._failed.move_to_end(input_key)
        if len(self._failed) > REMEMBERED_INPUTS:
            self._failed.popitem(last=False)
        self.outcomes.append(True)
        return True

    def failure_rate(self, min_calls: int) -> float:
        if len(self.outcomes) < min_calls:
            return 0.0
        return sum(self.outcomes) / len(self.outcomes)


class CircuitBreakers:
    """closed → open → half-open → closed, for the tools of one agent version.

    Closed: calls go ahead. The circuit opens after ``failure_threshold`` counted failures in
    a row (all workers together), or when counted failures reach ``failure_rate`` of this
    process's last ``window`` counted calls (once ``min_calls`` were seen). Only unhealthy
    failures count (timeouts, connection failures, 5xx), and an input that keeps failing only
    until another input succeeds after it: then the input is the trouble, not the service.

    Open: calls fail fast for ``reset_after_s``, whatever calls let through before it opened
    report meanwhile.

    Half-open: one trial call at a time goes ahead; any worker may take the slot. A success
    closes the circuit and a counted failure opens it again. Any other ending (the service
    refused this input, the tool raised something it did not classify, a known bad input
    failed again) proves nothing either way, so it frees the slot at once and the next call is
    the next trial; closing on it would let every call through on no evidence, and re-opening
    on it would let one bad input keep the tool away. A trial that never reports back frees
    the slot after ``reset_after_s`` (a trial that is merely slower than that overlaps the
    next one, which costs one call more and nothing else).
    """

    def __init__(self, engine: Engine, spec: CircuitSpec) -> None:
        self.engine = engine
        self.spec = spec
        self._reset = timedelta(seconds=spec.reset_after_s)
        self._lock = threading.Lock()
        self._view: dict[str, CircuitBreaker] = {}
        self._refreshed = 0.0
        self._evidence: dict[str, _Evidence] = {}

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._refreshed < REFRESH_S:
            return
        with read_session(self.engine) as session:
            rows = session.exec(select(CircuitBreaker)).all()
        self._view = {row.tool: row for row in rows}
        self._refreshed = now

    def state(self, tool: str) -> CircuitState:
        """The circuit's state as this process last saw it (at most ``REFRESH_S`` old)."""
        with self._lock:
            self._refresh()
            row = self._view.get(tool)
            return row.state if row else CircuitState.CLOSED

    def allow(self, tool: str) -> bool:
        """Whether a call of ``tool`` may go ahead now.

        In an open circuit whose pause is over, or a half-open one whose trial slot is free or
        expired, this takes the trial slot for the caller, whose call must then be reported
        with ``record`` (or the slot stays taken until ``reset_after_s`` passes).
        """
        with self._lock:
            self._refresh()
            row = self._view.get(tool)
            if row is None or row.state is CircuitState.CLOSED:
                return True
            since = row.opened_at if row.state is CircuitState.OPEN else row.trial_started_at
            if since is not None and utcnow() - since < self._reset:
                return False
            return self._take_trial(tool)

    def record(
        self, tool: str, health: Health, error_class: ErrorClass | None, *, input_key: str
    ) -> None:
        """Tell the breaker how one call of ``tool`` ended.

        Args:
            tool: the tool called.
            health: what the call says about the tool's service (``Execution.health``).
            error_class: the call's error class; None when it succeeded.
            input_key: a digest of the call's arguments (the ledger's ``args_hash``), so that
                an input failing on every call counts once while other inputs succeed.
        """
        with self._lock:
            evidence = self._evidence.get(tool)
            if evidence is None:
                evidence = self._evidence[tool] = _Evidence(self.spec.window)
            if error_class is None:
                evidence.succeeded(input_key)
                row = self._view.get(tool)
                # An open circuit keeps its pause: a success there is a call let through
                # before it opened, which says nothing about the service since.
                if row is not None and (
                    row.state is CircuitState.HALF_OPEN
                    or (row.state is CircuitState.CLOSED and row.consecutive_failures)
                ):
                    self._close(tool)
            elif health is Health.UNHEALTHY and evidence.failed(input_key):
                self._count_failure(tool, error_class, evidence)
            else:
                self._free_trial(tool)

    def _take_trial(self, tool: str) -> bool:
        now = utcnow()
        with write_session(self.engine) as session:
            taken = session.connection().execute(
                _TAKE_TRIAL, {"breaker": tool, "expired": now - self._reset, "taken_at": now}
            )
            row = session.exec(select(CircuitBreaker).where(col(CircuitBreaker.tool) == tool)).one()
        self._view[tool] = row
        # Not taken: another worker holds the trial, or has just closed the circuit.
        return bool(taken.rowcount == 1) or row.state is CircuitState.CLOSED

    def _close(self, tool: str) -> None:
        with write_session(self.engine) as session:
            row = _locked_row(session, tool)
            row.state = CircuitState.CLOSED
            row.consecutive_failures = 0
            row.trial_started_at = None
            row.updated_at = utcnow()
            session.add(row)
        self._view[tool] = row

    def _count_failure(self, tool: str, error_class: ErrorClass, evidence: _Evidence) -> None:
        rate = evidence.failure_rate(self.spec.min_calls)
        with write_session(self.engine) as session:
            row = _locked_row(session, tool)
            row.consecutive_failures += 1
            row.last_error_class = error_class
            row.updated_at = utcnow()
            tripped = (
                row.consecutive_failures >= self.spec.failure_threshold
                or rate >= self.spec.failure_rate
            )
            if row.state is CircuitState.HALF_OPEN or (
                row.state is CircuitState.CLOSED and tripped
            ):
                row.state = CircuitState.OPEN
                row.opened_at = row.updated_at
                row.opened_count += 1
                row.trial_started_at = None
                evidence.outcomes.clear()
            session.add(row)
        self._view[tool] = row

    def _free_trial(self, tool: str) -> None:
        row = self._view.get(tool)
        if row is None or row.state is not CircuitState.HALF_OPEN or row.trial_started_at is None:
            return
        with write_session(self.engine) as session:
            session.connection().execute(_FREE_TRIAL, {"breaker": tool, "freed_at": utcnow()})
            row = session.exec(select(CircuitBreaker).where(col(CircuitBreaker.tool) == tool)).one()
        self._view[tool] = row


def _locked_row(session: Session, tool: str) -> CircuitBreaker:
    """The tool's breaker row, created if missing, locked until the session ends."""
    connection = session.connection()
    values = {
        "tool": tool,
        "state": CircuitState.CLOSED,
        "consecutive_failures": 0,
        "opened_count": 0,
        "updated_at": utcnow(),
    }
    # Two workers may record a tool's first failure at once: the second insert does nothing.
    if connection.dialect.name == "postgresql":
        connection.execute(postgresql.insert(BREAKERS).values(values).on_conflict_do_nothing())
    else:
        connection.execute(sqlite.insert(BREAKERS).values(values).on_conflict_do_nothing())
    return session.exec(
        select(CircuitBreaker).where(col(CircuitBreaker.tool) == tool).with_for_update()
    ).one()
