"""A worker with ``STEWARD_OTEL_EXPORT=1`` runs the export in a process of its own, starts it
again if it dies, and stops it when the worker stops."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine

from agent.telemetry import cursor
from agent.worker import Worker
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.runtime import (
    Effects,
    install_agent,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)
from tests.support.telemetry import refund_script

pytestmark = pytest.mark.slow


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_the_export_process_is_started_watched_and_stopped(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = OtlpReceiver().start()
    monkeypatch.setenv("STEWARD_OTEL_EXPORT", "1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "steward-child-test")
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(engine, "shop", scripted_version(refund_script(50.0)))
    worker = Worker(platform_for(engine, registry), poll_s=0.05, export_interval_s=0.2)
    worker.start()
    try:
        submit(engine, "shop", {"order_id": "O1"})
        _wait_for(lambda: len(receiver.received()) > 0, "the first run's spans")
        first = worker.export_process
        assert first is not None and first.poll() is None
        os.kill(first.pid, signal.SIGKILL)  # the export process dies...
        first.wait()
        submit(engine, "shop", {"order_id": "O1"})
        # ...the worker starts another, which sends what came since.
        _wait_for(
            lambda: (
                worker.export_process is not first
                and len({s.trace_id for s in receiver.received()}) == 2
            ),
            "a new export process to send the second run",
        )
        child = worker.export_process
        assert child is not None and child.pid != first.pid
    finally:
        worker.stop()
        receiver.stop()
    assert child.poll() is not None  # stopped with the worker
    assert cursor.backlog(engine).steps == 0
    assert {s.resource["service.name"] for s in receiver.received()} == {"steward-child-test"}
