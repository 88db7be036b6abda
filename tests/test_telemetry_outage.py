"""The collector down for a while: a worker's runs go on unaffected, the export backs off, and
once the collector is back every span arrives, by the ids derived from the steps."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.telemetry import cursor
from agent.telemetry.ids import SpanIds
from agent.worker import Worker
from storage.engine import read_session
from storage.enums import RunStatus, StepKind
from storage.models import Run, Step, TelemetryCursor
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.runtime import (
    Effects,
    install_agent,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)
from tests.support.telemetry import otlp_export, refund_script

RUNS = 6


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _statuses(engine: Engine) -> list[RunStatus]:
    with read_session(engine) as session:
        return list(session.exec(select(Run.status)).all())


def test_runs_go_on_while_the_collector_is_down_and_every_span_arrives_after(
    engine: Engine,
) -> None:
    receiver = OtlpReceiver().start()
    receiver.stop()  # the port is known and nothing listens on it: the collector is down
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(engine, "shop", scripted_version(refund_script(50.0)))
    export = otlp_export(engine, receiver.url, owner="worker-export")
    worker = Worker(
        platform_for(engine, registry),
        poll_s=0.02,
        trace_export=export,
        export_interval_s=0.05,
    )
    worker.start()
    try:
        for _ in range(RUNS):
            submit(engine, "shop", {"order_id": "O1"})
        _wait_for(
            lambda: _statuses(engine).count(RunStatus.SUCCEEDED) == RUNS, "the runs to finish"
        )
        _wait_for(lambda: export.failures >= 2, "the export to try and fail")
        assert len(effects.payments) == RUNS  # every refund made, none twice
        behind = cursor.backlog(engine)
        assert behind.runs == RUNS and behind.steps > 0
        with read_session(engine) as session:
            state = session.exec(select(TelemetryCursor)).one()
        assert state.failures >= 2 and state.retry_at is not None and state.last_error

        receiver.start()  # the collector is back, on the same port
        _wait_for(lambda: cursor.backlog(engine).steps == 0, "the export to catch up")
    finally:
        worker.stop()
        receiver.stop()

    ids = SpanIds(cursor.installation_key(engine))
    with read_session(engine) as session:
        runs = session.exec(select(Run)).all()
        steps = session.exec(
            select(Step).where(
                col(Step.kind).in_(
                    [StepKind.PROPOSAL, StepKind.APPLY_GUARDRAIL, StepKind.EXECUTE_TOOL]
                )
            )
        ).all()
        state = session.exec(select(TelemetryCursor)).one()
    expected = {f"{ids.step(s.id or 0):016x}" for s in steps} | {
        f"{ids.segment(r.id or 0, 1):016x}" for r in runs
    }
    received = receiver.by_id()
    assert expected <= set(received)
    assert {received[span].trace_id for span in expected} == {
        f"{ids.trace(r.id or 0):032x}" for r in runs
    }
    assert state.failures == 0 and state.retry_at is None and state.sent_at is not None
