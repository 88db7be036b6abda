"""Circuit breakers per tool, stored in the database so every worker fails fast together.

Each process keeps a view of the breakers refreshed at most once a second, so the common case
(closed circuit) costs no query; state changes are written through at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import select

from agent.spec import CircuitSpec
from storage.engine import read_session, write_session
from storage.enums import CircuitState, ErrorClass
from storage.models import CircuitBreaker
from storage.types import utcnow

REFRESH_S = 1.0


class CircuitBreakers:
    """closed → open → half-open → closed.

    A closed circuit opens after ``failure_threshold`` failures in a row, or when the share of
    failures among this process's last ``window`` attempts reaches ``failure_rate``. After
    ``reset_after_s`` one trial call is let through (half-open): success closes the circuit,
    failure opens it again. Only failures that say something about the tool's health count
    (timeouts, unavailability), not business errors.
    """

    def __init__(self, engine: Engine, spec: CircuitSpec) -> None:
        self.engine = engine
        self.spec = spec
        self._lock = threading.Lock()
        self._view: dict[str, CircuitBreaker] = {}
        self._refreshed = 0.0
        self._trials: set[str] = set()
        self._windows: dict[str, deque[bool]] = {}

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._refreshed < REFRESH_S:
            return
        with read_session(self.engine) as session:
            rows = session.exec(select(CircuitBreaker)).all()
        self._view = {row.tool: row for row in rows}
        self._refreshed = now

    def state(self, tool: str) -> CircuitState:
        with self._lock:
            self._refresh()
            row = self._view.get(tool)
            return row.state if row else CircuitState.CLOSED

    def allow(self, tool: str) -> bool:
        """Whether a call of ``tool`` may go ahead now."""
        with self._lock:
            self._refresh()
            row = self._view.get(tool)
            if row is None or row.state is CircuitState.CLOSED:
                return True
            if row.state is CircuitState.OPEN:
                opened = row.opened_at or utcnow()
                if utcnow() - opened < timedelta(seconds=self.spec.reset_after_s):
                    return False
                self._write(tool, state=CircuitState.HALF_OPEN)
            if tool in self._trials:
                return False
            self._trials.add(tool)
            return True

    def _window(self, tool: str, failed: bool) -> float:
        window = self._windows.setdefault(tool, deque(maxlen=self.spec.window))
        window.append(failed)
        if len(window) < self.spec.min_calls:
            return 0.0
        return sum(window) / len(window)

    def record_success(self, tool: str) -> None:
        with self._lock:
            self._trials.discard(tool)
            self._window(tool, False)
            row = self._view.get(tool)
            if row is not None and (
                row.state is not CircuitState.CLOSED or row.consecutive_failures
            ):
                self._write(tool, state=CircuitState.CLOSED, consecutive_failures=0)

    def record_failure(self, tool: str, error_class: ErrorClass) -> None:
        """Count a failure that says something about the tool's health (timeouts, 5xx...)."""
        with self._lock:
            self._trials.discard(tool)
            rate = self._window(tool, True)
            self._refreshed = 0.0
            self._refresh()
            row = self._view.get(tool)
            failures = (row.consecutive_failures if row else 0) + 1
            state = row.state if row else CircuitState.CLOSED
            tripped = failures >= self.spec.failure_threshold or rate >= self.spec.failure_rate
            if state is CircuitState.HALF_OPEN or (state is CircuitState.CLOSED and tripped):
                self._windows.pop(tool, None)
                self._write(
                    tool,
                    state=CircuitState.OPEN,
                    consecutive_failures=failures,
                    last_error_class=error_class,
                    opened=True,
                )
            else:
                self._write(
                    tool, state=state, consecutive_failures=failures, last_error_class=error_class
                )

    def _write(
        self,
        tool: str,
        *,
        state: CircuitState,
        consecutive_failures: int | None = None,
        last_error_class: ErrorClass | None = None,
        opened: bool = False,
    ) -> None:
        with write_session(self.engine) as session:
            row = session.get(CircuitBreaker, tool)
            if row is None:
                row = CircuitBreaker(tool=tool)
            row.state = state
            if consecutive_failures is not None:
                row.consecutive_failures = consecutive_failures
            if last_error_class is not None:
                row.last_error_class = last_error_class
            if opened:
                row.opened_at = utcnow()
                row.opened_count += 1
            row.updated_at = utcnow()
            session.add(row)
        self._view[tool] = row
