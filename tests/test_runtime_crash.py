"""SIGKILL workers at random points across many runs: nothing is lost, nothing runs twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, Engine
from sqlmodel import select

from agent.platform import Platform
from agent.runtime.claims import claim_next
from agent.worker import Worker
from storage import migrate
from storage.engine import create_engine, read_session
from storage.enums import ReviewKind, RunStatus, TaskStatus, ToolCallStatus
from storage.models import Review, Run, Task, ToolCall
from tests.support.runtime import (
    Effects,
    install_agent,
    scripted_version,
    shop_registry,
    submit,
)

RUNS = 100
KILLS = 15
BATCH = 20
ROOT = Path(__file__).resolve().parents[1]


def _spawn(url: str, effects: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.crash_worker", url, str(effects), *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _settled(url: URL) -> bool:
    engine = create_engine(url)
    try:
        with read_session(engine) as session:
            tasks = session.exec(select(Task)).all()
            runs = session.exec(select(Run)).all()
    finally:
        engine.dispose()
    open_runs = [r for r in runs if r.status in (RunStatus.READY, RunStatus.RUNNING)]
    return not open_runs and all(t.status is not TaskStatus.QUEUED for t in tasks)


@pytest.mark.slow
def test_sigkilled_workers_lose_no_run_and_repeat_no_side_effect(
    db_url: URL, tmp_path: Path
) -> None:
    engine = create_engine(db_url)
    migrate.upgrade(engine)
    document = scripted_version(
        [
            {"reasoning": "look up", "calls": [{"tool": "lookup", "args": {}}]},
            {
                "reasoning": "pay and tell",
                "calls": [{"tool": "pay", "args": {}}, {"tool": "notify", "args": {}}],
            },
            {"reasoning": "done", "final": {"resolution": "refunded"}},
        ],
        tools=["lookup", "pay", "notify"],
        data_sources=[],
        rate_limits=[],
        policy={"default": "allow"},
    )
    install_agent(engine, "crashy", document)
    submitted = 0
    for _ in range(RUNS):
        submit(engine, "crashy", {"n": submitted})
        submitted += 1

    url = db_url.render_as_string(hide_password=False)
    effects = tmp_path / "effects.log"
    rng = random.Random(20261123)
    workers = [_spawn(url, effects), _spawn(url, effects)]
    kills = 0
    try:
        while kills < KILLS:
            if _settled(db_url):
                # The workers finished before every kill landed: give them more to lose.
                for _ in range(BATCH):
                    submit(engine, "crashy", {"n": submitted})
                    submitted += 1
            time.sleep(rng.uniform(0.4, 1.2))  # workers need ~1 s to start and claim
            victim = rng.randrange(len(workers))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            kills += 1
            workers[victim] = _spawn(url, effects)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    engine.dispose()
    drain = _spawn(url, effects, "--drain")
    assert drain.wait(timeout=150) == 0
    assert kills == KILLS

    engine = create_engine(db_url)
    try:
        with read_session(engine) as session:
            tasks = session.exec(select(Task)).all()
            runs = session.exec(select(Run)).all()
            ledger = session.exec(select(ToolCall)).all()
            unknown = session.exec(select(Review)).all()
    finally:
        engine.dispose()
    # no run is lost: every task has exactly one run, each finished or waiting for a person
    assert len(tasks) == submitted >= RUNS
    assert sorted(r.task_id for r in runs) == sorted(t.id for t in tasks)
    unexpected = [
        (r.id, r.status, r.error_class, r.error_message)
        for r in runs
        if r.status not in (RunStatus.SUCCEEDED, RunStatus.WAITING_REVIEW)
    ]
    assert unexpected == []
    # no side effect happened twice
    lines = Counter(effects.read_text().splitlines()) if effects.exists() else Counter()
    assert lines, "the workers never got to a side effect"
    assert max(lines.values()) == 1, [k for k, n in lines.items() if n > 1]
    # every succeeded side-effecting call happened exactly once, and only those or ones a
    # person is asked to verify
    succeeded = {
        f"{row.tool} {row.idempotency_key}"
        for row in ledger
        if row.status is ToolCallStatus.SUCCEEDED and row.tool != "lookup"
    }
    assert succeeded <= set(lines)
    asked = {f"notify run{r.run_id}:{r.call_id}" for r in unknown}
    assert all(r.kind is ReviewKind.OUTCOME_UNKNOWN for r in unknown)
    assert set(lines) <= succeeded | asked
    waiting = {r.id for r in runs if r.status is RunStatus.WAITING_REVIEW}
    assert waiting == {r.run_id for r in unknown}


def test_drain_waits_for_a_run_whose_worker_died_and_takes_it_over(engine: Engine) -> None:
    """A run whose worker died still holds its lease for a while: draining must not stop short
    of it, but wait for the lease to lapse and finish the run."""
    install_agent(
        engine,
        "shop",
        scripted_version(
            [
                {"reasoning": "look up", "calls": [{"tool": "lookup", "args": {"order_id": "O1"}}]},
                {"reasoning": "done", "final": {"resolution": "refunded"}},
            ]
        ),
    )
    submit(engine, "shop", {"order_id": "O1"})
    dead = claim_next(engine, "dead-worker", lease_s=1.5)  # claimed, then never processed
    assert dead is not None
    worker = Worker(Platform(engine, shop_registry(Effects())), lease_s=30, poll_s=0.05)
    assert worker.drain(timeout_s=60) == 1
    # A run the draining worker holds itself, not being worked on (its processing failed),
    # does not keep the drain going: it stops instead of retrying that run for ever.
    submit(engine, "shop", {"order_id": "O2"})
    again = Worker(Platform(engine, shop_registry(Effects())), lease_s=30, poll_s=0.05)
    failed = claim_next(engine, again.id, lease_s=1.5)
    assert failed is not None
    assert again.drain(timeout_s=60) == 0
    with read_session(engine) as session:
        assert session.get(Run, failed.run_id).status is RunStatus.RUNNING  # type: ignore[union-attr]
    with read_session(engine) as session:
        run = session.get(Run, dead.run_id)
    assert run is not None
    assert run.status is RunStatus.SUCCEEDED
    assert run.claims == 2  # the dead worker's claim, then the draining worker's
