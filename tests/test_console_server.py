"""The console as ``make run`` serves it: its embedded worker starts with the process, before
any browser opens the console, and reports how many runs it processed while it runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlmodel import col, select

from agent.actors import Actor
from agent.tasks import submit_task
from storage.engine import read_session
from storage.enums import TaskStatus
from storage.models import Task, Worker
from tests.support.console import engine_for
from tests.support.runtime import platform_for
from tests.support.server import serve_console

pytestmark = [pytest.mark.slow]

WAIT_S = 60.0
OLGA = Actor.of("olga", ["operator"])


def _wait_for(predicate: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {WAIT_S:.0f} s")


def test_the_embedded_worker_starts_with_the_process_not_the_first_browser(
    demo_url: str, tmp_path: Path
) -> None:
    engine = engine_for(demo_url)
    task_id = submit_task(
        platform_for(engine),
        OLGA,
        "support",
        {"intent": "order_status", "customer_id": "C-1001", "order_id": "O-5001"},
    )
    try:
        # Only the health probe reaches the server: no browser session ever runs the app.
        with serve_console(demo_url, tmp_path / "console.log"):

            def finished() -> bool:
                with read_session(engine) as session:
                    task = session.get(Task, task_id)
                return task is not None and task.status is not TaskStatus.QUEUED

            _wait_for(finished, f"task {task_id} was not taken by the embedded worker")

            def counted() -> bool:
                with read_session(engine) as session:
                    rows = session.exec(select(Worker).where(col(Worker.embedded))).all()
                # Written by the heartbeat while the worker runs, not only when it stops.
                return any(r.runs_processed >= 1 and r.stopped_at is None for r in rows)

            _wait_for(counted, "the live worker's row never showed the runs it processed")
        with read_session(engine) as session:
            rows = session.exec(select(Worker).where(col(Worker.embedded))).all()
        assert len(rows) == 1
        assert rows[0].stopped_at is not None, "the server stopped without stopping its worker"
        assert rows[0].runs_processed >= 1
    finally:
        engine.dispose()
    log = (tmp_path / "console.log").read_text()
    assert "Traceback" not in log, log
