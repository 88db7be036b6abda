"""A real ``steward worker`` process on the seeded demo, with every telemetry switch on: its
``/metrics`` port answers what the database holds, its export job sends every committed step
to a loopback OTLP receiver, and its log lines on standard error are JSON objects."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from agent.telemetry import cursor
from agent.telemetry.ids import SpanIds
from storage.engine import read_session
from storage.enums import RunStatus, StepKind, TaskStatus
from storage.models import Run, Step, Task
from tests.support.cli import ok, steward
from tests.support.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.slow
OPEN = (RunStatus.READY, RunStatus.RUNNING)
QUEUED = (TaskStatus.QUEUED, TaskStatus.RUNNING)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def _idle(engine: Engine) -> bool:
    """No task waits for a worker and no run is claimable or running."""
    with read_session(engine) as session:
        tasks = session.exec(
            select(func.count()).select_from(Task).where(col(Task.status).in_(QUEUED))
        ).one()
        runs = session.exec(
            select(func.count()).select_from(Run).where(col(Run.status).in_(OPEN))
        ).one()
    return tasks == runs == 0


def _metrics(port: int) -> str | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.TransportError:
        return None


def test_a_worker_process_serves_metrics_exports_traces_and_logs_json(
    migrated: Engine, tmp_path: Path
) -> None:
    ok(steward(migrated, "demo", "seed", "--no-evaluations"))
    receiver = OtlpReceiver().start()
    port = _free_port()
    url = migrated.url.render_as_string(hide_password=False)
    stderr = (tmp_path / "worker.err").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        STEWARD_DATABASE_URL=url,
        STEWARD_METRICS_PORT=str(port),
        STEWARD_OTEL_EXPORT="1",
        STEWARD_LOG_FORMAT="json",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.url,
        OTEL_SERVICE_NAME="steward-worker",
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "worker", "--poll", "0.05"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        _wait_for(lambda: _metrics(port) is not None, "the worker's /metrics")
        _wait_for(lambda: _idle(migrated), "the demo tasks to be worked")
        _wait_for(lambda: cursor.backlog(migrated).steps == 0, "the export to catch up")
        text = _metrics(port) or ""
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        stderr.close()
        receiver.stop()
    assert worker.returncode == 0

    runs: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "steward_runs":
                key = (sample.labels["agent"], sample.labels["status"])
                runs[key] = runs.get(key, 0) + sample.value
            if sample.name == "steward_trace_export_backlog_steps":
                assert sample.value == 0
    with read_session(migrated) as session:
        rows = session.exec(select(Run)).all()
        steps = session.exec(
            select(Step).where(
                col(Step.kind).in_([StepKind.APPLY_GUARDRAIL, StepKind.EXECUTE_TOOL])
            )
        ).all()
        names = dict(session.exec(select(Run.id, Run.agent_id)).all())
    assert sum(runs.values()) == len(rows) > 0
    statuses = {s for (_, s) in runs}
    assert statuses == {r.status.value for r in rows}

    ids = SpanIds(cursor.installation_key(migrated))
    received = receiver.by_id()
    assert {f"{ids.step(s.id or 0):016x}" for s in steps} <= set(received)
    assert {s.resource["service.name"] for s in received.values()} == {"steward-worker"}
    assert len({s.trace_id for s in received.values()}) == len(names)

    lines = [line for line in (tmp_path / "worker.err").read_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(record)
