"""``/metrics``: served over HTTP, parsed with Prometheus' own text parser, each value checked
against the database; labels bounded (no run, task or review ids)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from agent.telemetry import cursor
from agent.telemetry.metrics import serve_metrics
from storage.engine import read_session
from storage.enums import ReviewStatus, RunStatus, ToolCallStatus
from storage.models import CircuitBreaker, Review, Run, ToolCall
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.runtime import (
    Effects,
    drive,
    install_agent,
    scripted_version,
    shop_registry,
    submit,
)
from tests.support.telemetry import approve_and_finish, otlp_export, refund_script

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def scrape(engine: Engine) -> Iterator[object]:
    server, thread = serve_metrics(engine, ("127.0.0.1", 0), export_backlog=True)

    def read() -> Samples:
        text = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10).text
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    yield read
    server.shutdown()
    server.server_close()
    thread.join()


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _work(engine: Engine) -> None:
    """Three refund runs: one approved and finished, two parked on their reviews; a run whose
    read tool keeps failing."""
    effects = Effects()
    registry = shop_registry(effects)
    script = refund_script(300.0)
    install_agent(engine, "shop", scripted_version(script))
    for _ in range(3):
        submit(engine, "shop", {"order_id": "O1"})
    drive(engine, registry)
    with read_session(engine) as session:
        first = session.exec(select(Review).order_by(col(Review.id))).first()
    assert first is not None and first.id is not None
    approve_and_finish(engine, registry, first.id)
    broken = [
        {"reasoning": "try", "calls": [{"tool": "broken", "args": {}}]},
        {"reasoning": "give up", "final": {"resolution": "escalated"}},
    ]
    install_agent(engine, "flaky", scripted_version(broken))
    submit(engine, "flaky", {"order_id": "O2"})
    drive(engine, registry)


def test_metrics_match_the_database(engine: Engine, scrape: object) -> None:
    _work(engine)
    samples = scrape()  # type: ignore[operator]

    with read_session(engine) as session:
        by_status = dict(
            session.exec(select(Run.status, func.count()).group_by(col(Run.status))).all()
        )
        runs = session.exec(select(Run)).all()
        calls = session.exec(select(ToolCall)).all()
        reviews = session.exec(select(Review)).all()
        breakers = session.exec(select(CircuitBreaker)).all()

    shop_runs = sum(
        v
        for (n, labels), v in samples.items()
        if n == "steward_runs" and ("agent", "shop") in labels
    )
    assert shop_runs == 3
    assert _value(samples, "steward_runs", agent="shop", version="1", status="succeeded") == 1
    assert _value(samples, "steward_runs", agent="shop", version="1", status="waiting_review") == 2
    total_runs = sum(v for (n, _), v in samples.items() if n == "steward_runs")
    assert total_runs == sum(by_status.values()) == len(runs)

    tokens_in = sum(r.tokens_in for r in runs if r.agent_id == runs[0].agent_id)
    assert (
        _value(samples, "steward_model_tokens_total", agent="shop", version="1", type="input")
        == tokens_in
        > 0
    )
    assert _value(
        samples, "steward_model_tokens_total", agent="shop", version="1", type="output"
    ) == sum(r.tokens_out for r in runs if r.agent_id == runs[0].agent_id)

    pending = [r for r in reviews if r.status is ReviewStatus.PENDING]
    assert (
        _value(samples, "steward_review_queue_depth", agent="shop", status="pending")
        == len(pending)
        == 2
    )
    assert _value(samples, "steward_review_oldest_waiting_seconds", agent="shop") >= 0.0
    decided = [r for r in reviews if r.decided_by is not None]
    assert _value(samples, "steward_review_decision_seconds_count") == len(decided) == 1
    assert _value(samples, "steward_review_decision_seconds_bucket", le="+Inf") == 1
    assert (
        _value(samples, "steward_review_decision_seconds_bucket", le="60") == 1
    )  # decided at once

    ended = [c for c in calls if c.status is not ToolCallStatus.IN_FLIGHT]
    for tool in {c.tool for c in ended}:
        for status in {c.status for c in ended if c.tool == tool}:
            expected = sum(1 for c in ended if c.tool == tool and c.status is status)
            assert (
                _value(samples, "steward_tool_calls_total", tool=tool, status=status.value)
                == expected
            )
    failed = [c for c in ended if c.error_class is not None]
    assert failed and all(c.tool == "broken" for c in failed)
    assert _value(
        samples, "steward_tool_errors_total", tool="broken", error_class="tool_error"
    ) == len(failed)

    assert breakers  # the failing tool has a breaker
    for breaker in breakers:
        assert (
            _value(samples, "steward_circuit_state", tool=breaker.tool, state=breaker.state.value)
            == 1
        )
        assert (
            _value(samples, "steward_circuit_openings_total", tool=breaker.tool)
            == breaker.opened_count
        )

    behind = cursor.backlog(engine)
    assert _value(samples, "steward_trace_export_backlog_runs") == behind.runs == len(runs)
    assert _value(samples, "steward_trace_export_backlog_steps") == behind.steps > 0

    names = {label for (_, labels) in samples for label, _ in labels}
    assert names <= {"agent", "version", "status", "type", "tool", "error_class", "state", "le"}


def test_the_backlog_gauge_falls_to_zero_once_the_export_caught_up(
    engine: Engine, scrape: object
) -> None:
    _work(engine)
    receiver = OtlpReceiver().start()
    try:
        otlp_export(engine, receiver.url).run_once()
    finally:
        receiver.stop()
    samples = scrape()  # type: ignore[operator]
    assert _value(samples, "steward_trace_export_backlog_steps") == 0
    assert _value(samples, "steward_trace_export_backlog_runs") == 0
    assert receiver.received()
    with read_session(engine) as session:
        waiting = session.exec(
            select(func.count()).select_from(Run).where(col(Run.status) == RunStatus.WAITING_REVIEW)
        ).one()
    assert waiting == 2
