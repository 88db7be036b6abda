"""Two real worker processes against one ``2/minute`` limit: by default the counters live in
the database, so exactly two limited calls run between them and the rest are rate_limited.
Counted per process (``memory://``), each worker lets the whole limit through."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, Engine
from sqlmodel import select

from storage import migrate
from storage.engine import create_engine, read_session
from storage.enums import ErrorClass, RunStatus, StepKind
from storage.models import Run, Step, Task
from storage.models import Worker as WorkerRow
from tests.support.runtime import install_agent, scripted_version, submit

ROOT = Path(__file__).resolve().parents[1]
TASKS = 6
LIMIT = 2


def _spawn(url: str, calls: Path, storage: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "STEWARD_RATE_LIMIT_STORAGE"}
    if storage is not None:
        env["STEWARD_RATE_LIMIT_STORAGE"] = storage
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.limited_worker", url, str(calls)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, "PYTHONPATH": str(ROOT)},
    )


def _wait_for(done: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _workers_started(engine: Engine, count: int) -> bool:
    with read_session(engine) as session:
        return len(session.exec(select(WorkerRow)).all()) == count


def _all_finished(engine: Engine) -> bool:
    with read_session(engine) as session:
        runs = session.exec(select(Run)).all()
        tasks = session.exec(select(Task)).all()
    return len(runs) == len(tasks) and all(
        r.status not in (RunStatus.READY, RunStatus.RUNNING) for r in runs
    )


def _run_two_workers(url: URL, tmp_path: Path, storage: str | None) -> tuple[Counter[str], Engine]:
    """Two workers share TASKS tasks that each look something up, then notify; returns the
    notify calls that ran, by worker pid."""
    engine = create_engine(url)
    migrate.upgrade(engine)
    document = scripted_version(
        [
            {"reasoning": "look up", "calls": [{"tool": "lookup", "args": {}}]},
            {"reasoning": "tell", "calls": [{"tool": "notify", "args": {}}]},
            {"reasoning": "done", "final": {"resolution": "told"}},
        ],
        tools=["lookup", "notify"],
        data_sources=[],
        policy={"default": "allow"},
        rate_limits=[{"tool": "notify", "limit": f"{LIMIT}/minute"}],
    )
    install_agent(engine, "teller", document)
    calls = tmp_path / "calls.log"
    rendered = url.render_as_string(hide_password=False)
    workers = [_spawn(rendered, calls, storage) for _ in range(2)]
    try:
        # Both are up before there is work, so both take a share of it.
        _wait_for(lambda: _workers_started(engine, 2), "both workers to start")
        for n in range(TASKS):
            submit(engine, "teller", {"n": n})
        _wait_for(lambda: _all_finished(engine), "every run to finish")
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            proc.wait(timeout=60)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return Counter(line.split()[0] for line in lines), engine


def _outcome(engine: Engine) -> tuple[list[int], int, list[RunStatus]]:
    """Runs processed by each worker, rate-limited decisions, run statuses."""
    with read_session(engine) as session:
        processed = sorted(w.runs_processed for w in session.exec(select(WorkerRow)))
        limited = session.exec(
            select(Step).where(
                Step.kind == StepKind.APPLY_GUARDRAIL,
                Step.error_class == ErrorClass.RATE_LIMITED,
            )
        ).all()
        statuses = [r.status for r in session.exec(select(Run))]
    return processed, len(limited), statuses


@pytest.mark.slow
def test_two_workers_share_one_limit_through_the_database(db_url: URL, tmp_path: Path) -> None:
    ran, engine = _run_two_workers(db_url, tmp_path, storage=None)
    try:
        processed, limited, statuses = _outcome(engine)
    finally:
        engine.dispose()
    assert len(processed) == 2 and min(processed) >= 1, processed  # both workers took runs
    assert sum(processed) == TASKS
    assert sum(ran.values()) == LIMIT, ran
    assert limited == TASKS - LIMIT
    assert statuses == [RunStatus.SUCCEEDED] * TASKS


@pytest.mark.slow
def test_counted_per_process_each_worker_lets_the_whole_limit_through(tmp_path: Path) -> None:
    """What the default prevents: with ``memory://`` the limit multiplies by the workers."""
    url = URL.create("sqlite", database=str(tmp_path / "steward.db"))
    ran, engine = _run_two_workers(url, tmp_path, storage="memory://")
    try:
        processed, limited, _statuses = _outcome(engine)
    finally:
        engine.dispose()
    assert len(processed) == 2 and min(processed) >= 1, processed
    assert sum(processed) == TASKS
    # Each worker ran up to the whole limit on its own: more than the limit in all.
    assert sorted(ran.values()) == sorted(min(n, LIMIT) for n in processed), (ran, processed)
    assert sum(ran.values()) > LIMIT
    assert limited == TASKS - sum(ran.values())
