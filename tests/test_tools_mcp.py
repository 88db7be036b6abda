"""MCP servers as governed tools: a real MCP server (the SDK's own) started by the test over
stdio and over streamable HTTP, called through the run loop's gate, ledger and trace."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.errors import InvalidInput, VersionSpecError
from agent.spec import VersionSpec
from agent.tools.mcp.inspect import inspect_server, server_definition, server_entry
from agent.tools.registry import ToolRegistry
from agent.versions.document import parse_version
from storage.engine import read_session
from storage.enums import ErrorClass, ReviewStatus, RunStatus, SideEffect, StepKind
from storage.models import Review, Run, Step, ToolCall
from tests.support.runtime import OPERATOR, drive, install_agent, platform_for, submit

SERVER_MODULE = "tests.support.mcp_server"
SECRET = "mcp-s3cret-7f6e5d"
ROOT = Path(__file__).resolve().parent.parent


def _command() -> list[str]:
    return [sys.executable, "-m", SERVER_MODULE]


@pytest.fixture(scope="module")
def pinned() -> dict[str, Any]:
    """The ``mcp_servers`` entry ``steward mcp inspect --yaml`` prints for the test server."""
    server = server_definition(name="shop", command=_command(), env={"EFFECTS_FILE": "/dev/null"})
    return server_entry(server, inspect_server(server))


def _entry(pinned: dict[str, Any], effects: Path, **changes: Any) -> dict[str, Any]:
    entry = json.loads(json.dumps(pinned))
    entry["cwd"] = str(ROOT)
    entry["env"] = {"EFFECTS_FILE": str(effects), "API_TOKEN": "${env:STEWARD_TEST_MCP_TOKEN}"}
    entry.update(changes)
    return entry


def _version(script: list[dict[str, Any]], servers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "description": "an agent on an MCP server",
        "planner": {"kind": "scripted", "model": "script", "script": script},
        "tools": [],
        "mcp_servers": servers,
        "policy": {
            "default": "allow",
            "rules": [
                {
                    "id": "big-refund",
                    "tool": "refund",
                    "when": "args.amount > 50.0",
                    "effect": "escalate",
                    "reason": "refunds over $50 need an operator",
                },
            ],
        },
        "budgets": {"call_timeout_s": 20, "run_deadline_s": 120, "max_consecutive_failures": 5},
        "retries": {"max_attempts": 1},
        "output": {"schema": {"type": "object", "required": ["resolution"]}},
    }


def _effects(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _observations(engine: Engine) -> list[Step]:
    with read_session(engine) as session:
        return list(
            session.exec(
                select(Step).where(col(Step.kind) == StepKind.OBSERVATION).order_by(col(Step.id))
            ).all()
        )


def test_inspect_derives_governance_from_annotations(pinned: dict[str, Any]) -> None:
    tools = {tool["name"]: tool for tool in pinned["tools"]}
    assert tools["lookup_order"]["side_effect"] == "read"
    assert tools["lookup_order"]["idempotent"] is True
    assert tools["add_note"]["side_effect"] == "write"
    assert tools["add_note"]["idempotent"] is True
    # No annotations at all: the MCP defaults (destructive, not idempotent).
    assert tools["refund"]["side_effect"] == "irreversible"
    assert tools["refund"]["idempotent"] is False
    assert tools["refund"]["args_schema"]["required"] == ["order_id", "amount"]
    assert all(tool["schema_hash"].startswith("sha256:") for tool in tools.values())


def test_the_printed_entry_makes_a_valid_version_and_pins_are_hashed(
    pinned: dict[str, Any], tmp_path: Path
) -> None:
    document = _version([], [_entry(pinned, tmp_path / "e")])
    parsed = parse_version(yaml.safe_dump(document), registry=ToolRegistry())
    specs = ToolRegistry().specs(parsed.spec)
    assert specs["refund"].side_effect is SideEffect.IRREVERSIBLE
    assert specs["add_note"].side_effect is SideEffect.WRITE
    # The content hash covers the pins: a changed schema is a different version.
    changed = json.loads(json.dumps(document))
    changed["mcp_servers"][0]["tools"][0]["side_effect"] = "write"
    assert parse_version(yaml.safe_dump(changed)).content_hash != parsed.content_hash


def test_a_server_without_pins_is_refused_with_its_line_and_the_command(tmp_path: Path) -> None:
    text = (
        "planner: {kind: scripted}\n"
        "tools: []\n"
        "mcp_servers:\n"
        "  - name: files\n"
        "    command: [npx, files-server]\n"
        "policy: {default: allow}\n"
    )
    with pytest.raises(VersionSpecError) as caught:
        parse_version(text)
    assert caught.value.line == 4
    assert "steward mcp inspect --command 'npx files-server' --name files --yaml" in str(
        caught.value
    )


def test_an_edited_schema_no_longer_matches_its_hash(
    pinned: dict[str, Any], tmp_path: Path
) -> None:
    entry = _entry(pinned, tmp_path / "e")
    entry["tools"][0]["args_schema"]["properties"]["extra"] = {"type": "string"}
    with pytest.raises(VersionSpecError, match="does not match its args_schema"):
        parse_version(yaml.safe_dump(_version([], [entry])))


def test_command_and_url_together_are_refused(pinned: dict[str, Any], tmp_path: Path) -> None:
    entry = _entry(pinned, tmp_path / "e", url="http://127.0.0.1:1/mcp")
    with pytest.raises(VersionSpecError, match=r"either command .* or url"):
        parse_version(yaml.safe_dump(_version([], [entry])))


def test_an_unreachable_server_cannot_be_inspected() -> None:
    server = server_definition(name="gone", command=["/nonexistent/mcp-server"])
    with pytest.raises(InvalidInput, match="cannot connect to MCP server gone"):
        inspect_server(server, timeout_s=5)


def test_calls_are_mediated_escalated_approved_and_executed_once(
    engine: Engine, pinned: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_TEST_MCP_TOKEN", SECRET)
    effects = tmp_path / "effects.jsonl"
    script = [
        {
            "reasoning": "look, note, refund",
            "calls": [
                {"tool": "lookup_order", "args": {"order_id": "O1"}},
                {"tool": "add_note", "args": {"order_id": "O1", "text": "refunding"}},
                {"tool": "echo_token", "args": {}},
                {"tool": "refund", "args": {"order_id": "O1", "amount": 80.0}},
            ],
        },
        {"reasoning": "done", "final": {"resolution": "refunded"}},
    ]
    install_agent(engine, "mcp-shop", _version(script, [_entry(pinned, effects)]))
    submit(engine, "mcp-shop", {"order_id": "O1"})
    registry = ToolRegistry()
    assert drive(engine, registry) == [RunStatus.WAITING_REVIEW]
    assert [e["tool"] for e in _effects(effects)] == ["add_note"]
    with read_session(engine) as session:
        review = session.exec(select(Review)).one()
    assert review.tool == "refund"
    assert review.status is ReviewStatus.PENDING

    reviews.approve(platform_for(engine, registry), OPERATOR, review.id or 0)
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert drive(engine, registry) == []

    done = _effects(effects)
    refunds = [e for e in done if e["tool"] == "refund"]
    assert len(refunds) == 1
    with read_session(engine) as session:
        ledger = {row.tool: row for row in session.exec(select(ToolCall)).all()}
    # The idempotency key the ledger held reached the server in the request's _meta.
    assert refunds[0]["key"] == ledger["refund"].idempotency_key
    assert done[0]["key"] == ledger["add_note"].idempotency_key
    observed = {step.name: step for step in _observations(engine)}
    assert observed["lookup_order"].output["content"] == {"order_id": "O1", "status": "shipped"}
    # A secret that came from the environment never reaches the trace.
    dumped = json.dumps([step.output for step in _observations(engine)])
    assert SECRET not in dumped
    assert "[redacted]" in dumped


def test_a_crash_mid_call_is_classified_and_the_server_is_started_again(
    engine: Engine, pinned: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_TEST_MCP_TOKEN", SECRET)
    effects = tmp_path / "effects.jsonl"
    script = [
        {"reasoning": "crash it", "calls": [{"tool": "crash", "args": {}}]},
        {"reasoning": "again", "calls": [{"tool": "lookup_order", "args": {"order_id": "O2"}}]},
        {"reasoning": "done", "final": {"resolution": "looked"}},
    ]
    install_agent(engine, "crashy", _version(script, [_entry(pinned, effects)]))
    submit(engine, "crashy", {"order_id": "O2"})
    assert drive(engine, ToolRegistry()) == [RunStatus.SUCCEEDED]
    crash, lookup = _observations(engine)
    assert crash.error_class is ErrorClass.MCP_SERVER_CRASHED
    assert "lost during the call" in json.dumps(crash.output)
    assert lookup.error_class is None
    assert [e["tool"] for e in _effects(effects)] == ["crash"]  # not retried: irreversible


def test_a_changed_tool_is_refused_and_never_called(
    engine: Engine, pinned: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_TEST_MCP_TOKEN", SECRET)
    effects = tmp_path / "effects.jsonl"
    entry = _entry(pinned, effects)
    entry["env"]["VARIANT"] = "changed"  # the server now lists lookup_order with a new argument
    script = [
        {
            "reasoning": "look and note",
            "calls": [
                {"tool": "lookup_order", "args": {"order_id": "O3"}},
                {"tool": "add_note", "args": {"order_id": "O3", "text": "still fine"}},
            ],
        },
        {"reasoning": "done", "final": {"resolution": "noted"}},
    ]
    install_agent(engine, "drifted", _version(script, [entry]))
    submit(engine, "drifted", {"order_id": "O3"})
    drive(engine, ToolRegistry())
    lookup, note = _observations(engine)
    assert lookup.error_class is ErrorClass.MCP_TOOLS_CHANGED
    assert "steward mcp inspect" in json.dumps(lookup.output)
    # The tool that did not change still works.
    assert note.error_class is None
    assert [e["tool"] for e in _effects(effects)] == ["add_note"]


def test_a_server_that_cannot_start_is_unavailable(
    engine: Engine, pinned: dict[str, Any], tmp_path: Path
) -> None:
    entry = _entry(pinned, tmp_path / "e", command=["/nonexistent/mcp-server"])
    entry["env"] = {}
    script = [
        {"reasoning": "look", "calls": [{"tool": "lookup_order", "args": {"order_id": "O4"}}]},
        {"reasoning": "done", "final": {"resolution": "none"}},
    ]
    install_agent(engine, "nostart", _version(script, [entry]))
    submit(engine, "nostart", {"order_id": "O4"})
    drive(engine, ToolRegistry())
    (lookup,) = _observations(engine)
    assert lookup.error_class is ErrorClass.MCP_UNAVAILABLE


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The test server over streamable HTTP on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    effects = tmp_path / "http-effects.jsonl"
    process = subprocess.Popen(
        [*_command(), "--http", str(port)],
        cwd=ROOT,
        env={"EFFECTS_FILE": str(effects), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        for _ in range(200):
            try:
                httpx.get(url, timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, effects
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_streamable_http_server_is_governed_the_same_way(
    engine: Engine,
    pinned: dict[str, Any],
    http_server: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, effects = http_server
    monkeypatch.setenv("STEWARD_TEST_MCP_TOKEN", SECRET)
    entry = {
        "name": "shop",
        "url": url,
        "headers": {"Authorization": "Bearer ${env:STEWARD_TEST_MCP_TOKEN}"},
        "tools": pinned["tools"],
    }
    script = [
        {
            "reasoning": "note and refund",
            "calls": [
                {"tool": "add_note", "args": {"order_id": "O5", "text": "over http"}},
                {"tool": "refund", "args": {"order_id": "O5", "amount": 500.0}},
            ],
        },
        {"reasoning": "done", "final": {"resolution": "refunded"}},
    ]
    install_agent(engine, "http-shop", _version(script, [entry]))
    submit(engine, "http-shop", {"order_id": "O5"})
    registry = ToolRegistry()
    assert drive(engine, registry) == [RunStatus.WAITING_REVIEW]
    with read_session(engine) as session:
        review = session.exec(select(Review)).one()
    reviews.approve(platform_for(engine, registry), OPERATOR, review.id or 0)
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert [e["tool"] for e in _effects(effects)] == ["add_note", "refund"]
    with read_session(engine) as session:
        run = session.exec(select(Run)).one()
    assert run.status is RunStatus.SUCCEEDED


def test_the_spec_lists_pinned_tools_in_scope(pinned: dict[str, Any], tmp_path: Path) -> None:
    spec = VersionSpec.from_document(_version([], [_entry(pinned, tmp_path / "e")]))
    assert set(spec.tool_names) == {tool["name"] for tool in pinned["tools"]}
