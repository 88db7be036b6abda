"""End to end against a real OpenTelemetry backend: Arize Phoenix, started by the test from its
own virtual environment (``make phoenix``), receives the export over OTLP/HTTP and is asked
through its REST API what it stored: one trace per run with the run's segments, its model
calls and their tokens, the policy decisions with their verdicts, and the person's review
under the decision it answers."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from sqlalchemy.engine import Engine

from agent.telemetry.export import TraceExport
from tests.conftest import IN_CI
from tests.support.telemetry import approve_and_finish, parked_refund

pytestmark = [pytest.mark.phoenix, pytest.mark.slow]
PHOENIX = Path(__file__).resolve().parent.parent / ".venv-phoenix" / "bin" / "phoenix"
PROJECT = "steward-e2e"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Phoenix server on loopback; yields its base URL."""
    if not PHOENIX.exists():
        message = f"{PHOENIX} is missing: run `make phoenix` to install Arize Phoenix"
        if IN_CI:
            pytest.fail(message + " (CI=true: the end-to-end export test must run)")
        pytest.skip(message)
    port = _free_port()
    workdir = tmp_path_factory.mktemp("phoenix")
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (workdir / "phoenix.log").open("wb")
    process = subprocess.Popen(
        [str(PHOENIX), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (workdir / "phoenix.log").read_text()[-2000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Phoenix did not start within 120 s"
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _stored_spans(base: str, project: str, expected: int) -> list[dict[str, Any]]:
    """The project's spans, once Phoenix has stored at least ``expected`` (it writes them
    asynchronously)."""
    deadline = time.monotonic() + 60
    while True:
        answer = httpx.get(f"{base}/v1/projects/{project}/spans", params={"limit": 1000})
        spans: list[dict[str, Any]] = answer.json().get("data", []) if answer.is_success else []
        if len(spans) >= expected:
            return spans
        assert time.monotonic() < deadline, f"Phoenix stored {len(spans)} of {expected} spans"
        time.sleep(0.5)


def test_phoenix_stores_the_refund_run_with_its_decisions_and_the_approval_as_one_trace(
    phoenix: str, engine: Engine
) -> None:
    project = f"{PROJECT}-{engine.dialect.name}"  # one Phoenix serves both databases' tests
    export = TraceExport(
        engine,
        OTLPSpanExporter(endpoint=f"{phoenix}/v1/traces", timeout=10),
        owner="phoenix-test",
        resource=Resource({"service.name": "steward", "openinference.project.name": project}),
    )
    _, registry, review_id = parked_refund(engine)
    first = export.run_once()
    approve_and_finish(engine, registry, review_id)
    second = export.run_once()
    assert not first.failed and not second.failed
    sent = first.sent_spans + second.sent_spans
    export.run_once()  # nothing new: a repeat would be the same spans

    spans = _stored_spans(phoenix, project, sent)
    assert len(spans) == sent  # every span stored once
    assert len({s["context"]["trace_id"] for s in spans}) == 1
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: s["start_time"]):
        by_name.setdefault(span["name"], []).append(span)
    by_id = {s["context"]["span_id"]: s for s in spans}

    root, resumed = by_name["invoke_agent shop"]
    assert root["parent_id"] is None
    assert resumed["parent_id"] == root["context"]["span_id"]
    assert resumed["attributes"]["steward.run.status"] == "succeeded"

    chats = by_name["chat script"]
    assert [c["attributes"]["gen_ai.usage.input_tokens"] for c in chats] == [120, 200, 260]
    assert [c["attributes"]["gen_ai.usage.output_tokens"] for c in chats] == [30, 40, 20]

    guardrails = by_name["run_guardrail shop.policy"]
    assert [g["attributes"]["gen_ai.guardrail.verdict.type"] for g in guardrails] == [
        "allow",
        "escalate",
        "allow",
    ]
    escalated = guardrails[1]
    assert escalated["attributes"]["gen_ai.guardrail.security.policy.rule.id"] == "pay-medium"

    (review,) = by_name["steward.review pay"]
    assert review["attributes"]["steward.review.reviewer"] == "olga"
    assert review["attributes"]["steward.review.decision"] == "approved"
    assert review["parent_id"] == escalated["context"]["span_id"]
    assert by_id[escalated["parent_id"]]["name"] == "invoke_agent shop"
    assert [t["name"] for t in by_name["execute_tool lookup"] + by_name["execute_tool pay"]] == [
        "execute_tool lookup",
        "execute_tool pay",
    ]
