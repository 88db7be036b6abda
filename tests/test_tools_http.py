"""Declarative HTTP tools against a real HTTP server on the loopback interface."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.calls import Effect
from agent.errors import FenceLost, Health, ToolError, ToolTimeout, VersionSpecError
from agent.spec import HttpToolDef, PlannerSpec, PolicySpec, VersionSpec
from agent.tools.base import Fence, ToolContext
from agent.tools.http import HttpTool
from agent.tools.registry import ToolRegistry
from storage.engine import create_engine, read_session
from storage.enums import ErrorClass, SideEffect, StepKind
from storage.models import Step
from tests.support.runtime import drive, install_agent, scripted_version, submit

SECRET = "s3cr3t-Token-9f8e7d"
TOKEN_VARIABLE = "STEWARD_TEST_HTTP_TOKEN"


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Server:
    url: str
    received: list[Received] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _RecordingServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        received = Received(
            self.command,
            parts.path,
            parse_qs(parts.query),
            dict(self.headers.items()),
            json.loads(raw) if raw else None,
        )
        self.server.received.append(received)
        route = parts.path.split("/")[1]
        if route == "slow":
            time.sleep(0.6)
            self._reply(200, {"late": True})
        elif route == "status":
            code = int(parts.path.split("/")[2])
            extra = {"Retry-After": "7"} if code == 429 else {}
            # A careless service that echoes the caller's credentials in its error page.
            self._reply(code, f"failed for {self.headers.get('Authorization')}", extra)
        elif route == "text":
            self._reply(200, "plain words")
        elif route == "array":
            self._reply(200, [1, 2, 3])
        elif route == "scalar":
            self._reply(200, 42)
        elif route == "empty":
            self.send_response(204)
            self.end_headers()
        else:
            self._reply(
                200,
                {
                    "path": parts.path,
                    "query": received.query,
                    "headers": received.headers,
                    "body": received.body,
                },
            )

    def _reply(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        data = text.encode()
        try:
            self.send_response(code)
            kind = "text/plain" if isinstance(payload, str) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (the timeout test)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    received: list[Received]


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = _RecordingServer(("127.0.0.1", 0), _Handler)
    httpd.received = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", httpd.received)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http_client:
        yield http_client


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'http.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def ctx(sqlite_engine: Engine) -> ToolContext:
    return ToolContext(run_id=3, idempotency_key="run3:t1c0", timeout_s=2.0, engine=sqlite_engine)


def _tool(client: httpx.Client, url: str, **fields: Any) -> HttpTool:
    defn = HttpToolDef(
        name=fields.pop("name", "svc"),
        method=fields.pop("method", "GET"),
        url=url,
        args_schema={"type": "object"},
        **fields,
    )
    return HttpTool(defn, client)


def test_url_and_query_templates_are_filled_and_encoded(
    server: Server, client: httpx.Client, ctx: ToolContext
) -> None:
    tool = _tool(
        client,
        server.url + "/customers/{customer_id}/orders",
        query={"q": "{term}", "label": "tag-{tag}", "page": "{page}"},
    )
    result = tool.call({"customer_id": "a b/c?", "term": "red & blue", "tag": 5}, ctx)
    (request,) = server.received
    assert request.method == "GET"
    assert request.path == "/customers/a%20b%2Fc%3F/orders"
    assert request.query == {"q": ["red & blue"], "label": ["tag-5"]}  # page: no argument
    assert request.body is None
    assert request.headers["Idempotency-Key"] == "run3:t1c0"
    assert result["path"] == "/customers/a%20b%2Fc%3F/orders"


def test_post_sends_the_arguments_no_template_used(
    server: Server, client: httpx.Client, ctx: ToolContext
) -> None:
    tool = _tool(
        client,
        server.url + "/orders/{order_id}/refunds",
        method="POST",
        query={"dry_run": "{dry_run}"},
    )
    tool.call({"order_id": "O-1", "amount": 12.5, "note": "ok", "dry_run": False}, ctx)
    no_body = _tool(client, server.url + "/ping/{id}", method="POST", body="none")
    no_body.call({"id": 1, "ignored": True}, ctx)
    with_body = _tool(client, server.url + "/items/{id}", method="DELETE", body="args")
    with_body.call({"id": 1, "reason": "dup"}, ctx)
    first, second, third = server.received
    assert first.body == {"amount": 12.5, "note": "ok"}
    assert first.query == {"dry_run": ["false"]}
    assert (second.method, second.body) == ("POST", None)
    assert (third.method, third.body) == ("DELETE", {"reason": "dup"})


def test_a_missing_url_argument_is_refused_before_any_request(
    server: Server, client: httpx.Client, ctx: ToolContext
) -> None:
    tool = _tool(client, server.url + "/customers/{customer_id}")
    with pytest.raises(ToolError, match="'customer_id'") as caught:
        tool.call({}, ctx)
    assert caught.value.error_class is ErrorClass.INVALID_ARGUMENTS
    assert server.received == []


def test_env_secrets_reach_the_server_and_nowhere_else(
    server: Server,
    client: httpx.Client,
    ctx: ToolContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, SECRET)
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": "Bearer ${env:" + TOKEN_VARIABLE + "}", "X-Client": "steward"}
    echo = _tool(client, server.url + "/echo", headers=headers)
    result = echo.call({}, ctx)
    assert server.received[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert server.received[0].headers["X-Client"] == "steward"
    assert SECRET not in json.dumps(result)
    assert result["headers"]["Authorization"] == "Bearer [redacted]"

    failing = _tool(client, server.url + "/status/500", headers=headers)
    with pytest.raises(ToolError) as caught:
        failing.call({}, ctx)
    error = caught.value
    assert error.retryable
    assert "HTTP 500" in str(error) and "Bearer [redacted]" in str(error)
    assert SECRET not in str(error)
    assert error.__cause__ is None and error.__context__ is None
    assert SECRET not in caplog.text
    assert "svc" in caplog.text  # the tool did log its requests


def test_a_missing_env_variable_names_it_and_sends_nothing(
    server: Server, client: httpx.Client, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    tool = _tool(
        client,
        server.url + "/echo",
        headers={"Authorization": "Bearer ${env:" + TOKEN_VARIABLE + "}"},
    )
    with pytest.raises(ToolError, match=TOKEN_VARIABLE) as caught:
        tool.call({}, ctx)
    assert not caught.value.retryable
    assert server.received == []


def test_an_env_value_unfit_for_a_header_is_refused_without_showing_it(
    server: Server, client: httpx.Client, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, SECRET + "\r\nX-Evil: 1")
    tool = _tool(client, server.url + "/echo", headers={"X-Token": "${env:" + TOKEN_VARIABLE + "}"})
    with pytest.raises(ToolError, match="not allowed") as caught:
        tool.call({}, ctx)
    assert SECRET not in str(caught.value)
    assert server.received == []


def test_a_slow_answer_times_out_at_the_tighter_bound(
    server: Server, client: httpx.Client, ctx: ToolContext
) -> None:
    tool = _tool(client, server.url + "/slow", timeout_s=0.2)
    started = time.perf_counter()
    with pytest.raises(ToolTimeout, match=r"0\.2s") as caught:
        tool.call({}, ctx)
    assert time.perf_counter() - started < 0.55
    assert caught.value.retryable and caught.value.error_class is ErrorClass.TOOL_TIMEOUT
    assert caught.value.health is Health.UNHEALTHY
    bounded = ToolContext(run_id=3, idempotency_key="k", timeout_s=0.15, engine=ctx.engine)
    with pytest.raises(ToolTimeout, match=r"0\.15s"):
        _tool(client, server.url + "/slow", timeout_s=5.0).call({}, bounded)


@pytest.mark.parametrize(
    ("status", "retryable", "text"),
    [
        (429, True, "Retry-After: 7"),
        (408, True, "HTTP 408"),
        (500, True, "HTTP 500"),
        (503, True, "HTTP 503"),
        (400, False, "HTTP 400"),
        (404, False, "HTTP 404"),
        (409, False, "HTTP 409"),
        (422, False, "HTTP 422"),
    ],
)
def test_status_codes_are_classified(
    server: Server,
    client: httpx.Client,
    ctx: ToolContext,
    status: int,
    retryable: bool,
    text: str,
) -> None:
    with pytest.raises(ToolError) as caught:
        _tool(client, server.url + f"/status/{status}").call({}, ctx)
    assert caught.value.retryable is retryable
    assert type(caught.value) is ToolError
    assert text in str(caught.value)
    # A status the service could not help (5xx, 408, and 429's back-pressure) says it is
    # unhealthy; any other is its answer about this request, and no sign of ill health.
    assert caught.value.health is (Health.UNHEALTHY if retryable else Health.HEALTHY)


def test_an_unreachable_service_is_a_retryable_error(
    client: httpx.Client, ctx: ToolContext
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ToolError, match="cannot reach") as caught:
        _tool(client, f"http://127.0.0.1:{port}/x").call({}, ctx)
    assert caught.value.retryable and caught.value.health is Health.UNHEALTHY
    # Raised without the httpx exception, whose request object carries every header.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_bodies_must_be_json_objects_and_arrays_are_wrapped(
    server: Server, client: httpx.Client, ctx: ToolContext
) -> None:
    assert _tool(client, server.url + "/array").call({}, ctx) == {"items": [1, 2, 3]}
    assert _tool(client, server.url + "/empty").call({}, ctx) == {}
    with pytest.raises(ToolError, match="not JSON") as not_json:
        _tool(client, server.url + "/text").call({}, ctx)
    assert not not_json.value.retryable and not_json.value.health is Health.HEALTHY
    with pytest.raises(ToolError, match="JSON int"):
        _tool(client, server.url + "/scalar").call({}, ctx)


def test_registry_resolves_a_versions_http_tools_with_their_governance_fields(
    server: Server, client: httpx.Client, ctx: ToolContext
) -> None:
    defn = HttpToolDef(
        name="ship",
        method="POST",
        url=server.url + "/shipments",
        args_schema={"type": "object"},
        side_effect=SideEffect.WRITE,
        idempotent=False,
        data_sources=("shipping",),
        compensating_tool="cancel_shipment",
        description="Create a shipment.",
    )
    spec = VersionSpec(
        planner=PlannerSpec(kind="scripted"),
        tools=(),
        policy=PolicySpec(default=Effect.ALLOW),
        http_tools=(defn,),
    )
    tools = ToolRegistry().resolve(spec, client)
    ship = tools["ship"]
    assert isinstance(ship, HttpTool)
    assert (ship.spec.side_effect, ship.spec.idempotent, ship.spec.data_sources) == (
        SideEffect.WRITE,
        False,
        ("shipping",),
    )
    assert ship.spec.compensating_tool == "cancel_shipment"
    assert ship.spec.description == "Create a shipment."
    assert ship.call({"parcel": 1}, ctx)["body"] == {"parcel": 1}

    missing = VersionSpec(planner=spec.planner, tools=("nope",), policy=spec.policy)
    with pytest.raises(VersionSpecError, match="'nope'"):
        ToolRegistry().resolve(missing, client)


def test_the_fencing_token_goes_with_the_call_and_a_cancelled_call_is_not_sent(
    server: Server, client: httpx.Client, sqlite_engine: Engine
) -> None:
    tool = _tool(client, server.url + "/orders")
    fence = Fence(run_id=3, owner="worker-a", claim_no=4)
    tool.call({}, ToolContext(3, "run3:t1c0", 2.0, sqlite_engine, fence=fence))
    (request,) = server.received
    assert request.headers["Steward-Fencing-Token"] == "3:4"
    late = ToolContext(3, "run3:t1c1", 2.0, sqlite_engine, fence=fence)
    late.cancelled.set()
    with pytest.raises(FenceLost, match="was not sent"):
        tool.call({}, late)
    assert len(server.received) == 1


@pytest.mark.parametrize(
    ("status", "opens"),
    [
        *((status, False) for status in (400, 404, 409, 422)),
        *((status, True) for status in (408, 429, 500, 503)),
    ],
)
def test_only_statuses_that_say_the_service_is_unwell_open_its_circuit(
    server: Server, engine: Engine, status: int, opens: bool
) -> None:
    """Through the run loop: one call per order, each answered ``status``."""
    orders = [f"O-{i}" for i in range(6)]
    document = scripted_version(
        [
            {
                "reasoning": "score every order",
                "calls": [{"tool": "score", "args": {"order_id": o}} for o in orders],
            },
            {"reasoning": "done", "final": {"resolution": "scored"}},
        ],
        tools=[],
        http_tools=[
            {
                "name": "score",
                "method": "GET",
                "url": server.url + f"/status/{status}",
                "query": {"order": "{order_id}"},
                "args_schema": {"type": "object"},
                "data_sources": ["orders"],
            }
        ],
        budgets={"max_steps": 100, "max_consecutive_failures": 100, "max_denials": 100},
        retries={"max_attempts": 1},
        circuit_breaker={"failure_threshold": 3, "reset_after_s": 600},
    )
    install_agent(engine, "scorer", document)
    submit(engine, "scorer", {"n": 1})
    drive(engine, ToolRegistry())
    with read_session(engine) as session:
        observed = session.exec(
            select(Step)
            .where(col(Step.kind) == StepKind.OBSERVATION)
            .where(col(Step.name) == "score")
            .order_by(col(Step.id))
        ).all()
    classes = [step.error_class for step in observed]
    if opens:
        assert classes == [ErrorClass.TOOL_ERROR] * 3 + [ErrorClass.CIRCUIT_OPEN] * 3
        assert len(server.received) == 3
    else:
        assert classes == [ErrorClass.TOOL_ERROR] * 6
        assert len(server.received) == 6
