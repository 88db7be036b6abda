"""``steward gateway``: an agent built elsewhere calls a Steward agent's tools over MCP.

The gateway runs as a real HTTP server on the loopback interface and is driven by the SDK's
own client; every call is mediated on a run of the client's own, and an over-limit call waits
for a person, who approves it through the same review service the console uses.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.actors import Actor
from agent.errors import Forbidden, InvalidInput
from agent.gateway.server import gateway_app
from agent.gateway.tokens import create_token, revoke_token
from agent.platform import Platform
from agent.runtime.claims import claim_next
from storage.engine import read_session, write_session
from storage.enums import ReviewStatus, RunStatus, StepKind
from storage.models import GatewayToken, Review, Run, Step, Task, User
from tests.support.runtime import (
    OPERATOR,
    Effects,
    install_agent,
    scripted_version,
    shop_registry,
)

ADMIN = Actor.of("ada", ["admin"])


@dataclass
class Gateway:
    url: str
    platform: Platform
    effects: Effects


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def gateway(engine: Engine) -> Iterator[Gateway]:
    with write_session(engine) as session:
        session.add(User(name="ada", roles=["admin"]))
        session.add(User(name="bot", roles=["operator"]))
        session.add(User(name="olga", roles=["operator"]))
        session.add(User(name="mona", roles=["manager"]))
    install_agent(engine, "shop", scripted_version([]))
    effects = Effects()
    platform = Platform(engine, shop_registry(effects))
    port = _free_port()
    app, sessions = gateway_app(platform, "shop", host="127.0.0.1", port=port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    try:
        yield Gateway(f"http://127.0.0.1:{port}/mcp", platform, effects)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sessions.close()
        platform.close()


async def _session(url: str, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        listed = await client.list_tools()
        results: list[Any] = [sorted(tool.name for tool in listed.tools)]
        for name, args in calls:
            results.append(await client.call_tool(name, args))
        return results


def _run(url: str, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    return asyncio.run(_session(url, token, calls))


def test_an_over_limit_call_waits_for_a_person_and_the_client_gets_the_result(
    gateway: Gateway,
) -> None:
    token = create_token(gateway.platform, ADMIN, "shop", "bot", label="langgraph agent")
    listed, looked, waiting = _run(
        gateway.url,
        token,
        [
            ("lookup", {"order_id": "O1"}),
            ("pay", {"order_id": "O1", "amount": 500.0}),
        ],
    )
    assert "pay" in listed
    assert "steward_review_status" in listed
    assert looked.is_error is False
    assert looked.structured_content["order_id"] == "O1"
    assert waiting.is_error is False
    assert waiting.structured_content["status"] == "waiting_for_approval"
    review_id = waiting.structured_content["review_id"]
    assert gateway.effects.payments == {}

    # Still waiting: polling changes nothing.
    (_, still) = _run(gateway.url, token, [("steward_review_status", {"review_id": review_id})])
    assert still.structured_content["status"] == "waiting_for_approval"

    reviews.approve(gateway.platform, OPERATOR, review_id)
    (_, done) = _run(gateway.url, token, [("steward_review_status", {"review_id": review_id})])
    assert done.is_error is False
    assert done.structured_content == {"paid": 500.0}
    (_, again) = _run(gateway.url, token, [("steward_review_status", {"review_id": review_id})])
    assert again.structured_content == {"paid": 500.0}
    assert list(gateway.effects.payments.values()) == [500.0]  # executed exactly once

    engine = gateway.platform.engine
    with read_session(engine) as session:
        review = session.get(Review, review_id)
        assert review is not None
        assert review.status is ReviewStatus.APPROVED
        run = session.get(Run, review.run_id)
        assert run is not None
        task = session.get(Task, run.task_id)
        assert task is not None
        assert task.source == "gateway"
        assert task.submitted_by == "bot"
        kinds = [
            step.kind
            for step in session.exec(
                select(Step).where(col(Step.run_id) == run.id).order_by(col(Step.seq))
            ).all()
        ]
    assert kinds[0] is StepKind.INVOKE_AGENT
    assert StepKind.APPLY_GUARDRAIL in kinds
    assert StepKind.HUMAN_APPROVAL in kinds
    assert kinds.count(StepKind.EXECUTE_TOOL) == 2  # lookup, then the approved payment


def test_repeating_the_same_call_returns_its_outcome_once_decided(gateway: Gateway) -> None:
    token = create_token(gateway.platform, ADMIN, "shop", "bot")

    async def scenario() -> list[Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(gateway.url, http_client=http)) as client,
        ):
            args = {"order_id": "O2", "amount": 300.0}
            first = await client.call_tool("pay", args)
            repeat = await client.call_tool("pay", args)
            review_id = first.structured_content["review_id"]
            await asyncio.to_thread(reviews.approve, gateway.platform, OPERATOR, review_id)
            decided = await client.call_tool("pay", args)
            return [first, repeat, decided]

    first, repeat, decided = asyncio.run(scenario())
    assert first.structured_content["status"] == "waiting_for_approval"
    assert repeat.structured_content["review_id"] == first.structured_content["review_id"]
    assert decided.structured_content == {"paid": 300.0}
    assert list(gateway.effects.payments.values()) == [300.0]
    with read_session(gateway.platform.engine) as session:
        assert len(session.exec(select(Review)).all()) == 1


def test_a_denied_call_is_an_error_for_the_client_and_never_runs(gateway: Gateway) -> None:
    token = create_token(gateway.platform, ADMIN, "shop", "bot")
    (_, denied) = _run(gateway.url, token, [("wipe", {})])
    assert denied.is_error is True
    assert denied.structured_content["status"] == "denied"
    assert "deleting data is forbidden" in denied.structured_content["message"]
    assert gateway.effects.by_key == {}


def test_requests_without_a_valid_token_are_refused(gateway: Gateway) -> None:
    answer = httpx.post(gateway.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert answer.status_code == 401
    token = create_token(gateway.platform, ADMIN, "shop", "bot")
    with read_session(gateway.platform.engine) as session:
        row = session.exec(select(GatewayToken)).one()
        assert token not in (row.token_hash, row.label)
    revoke_token(gateway.platform, ADMIN, row.id or 0)
    answer = httpx.post(
        gateway.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 401


def test_only_admins_create_tokens_and_only_for_users_who_may_submit(gateway: Gateway) -> None:
    with pytest.raises(Forbidden):
        create_token(gateway.platform, OPERATOR, "shop", "bot")
    with write_session(gateway.platform.engine) as session:
        session.add(User(name="viewer", roles=[]))
    with pytest.raises(InvalidInput, match="may not submit work"):
        create_token(gateway.platform, ADMIN, "shop", "viewer")


def test_gateway_runs_are_never_claimed_by_workers(gateway: Gateway) -> None:
    token = create_token(gateway.platform, ADMIN, "shop", "bot")
    _run(gateway.url, token, [("lookup", {"order_id": "O3"})])
    with read_session(gateway.platform.engine) as session:
        run = session.exec(select(Run)).one()
    assert run.status is RunStatus.READY
    assert claim_next(gateway.platform.engine, "a-worker") is None
