"""Record and replay: a chat run exported as a scripted version reproduces the run without the
model, through the same governance; ``steward export-script`` writes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.actors import Actor
from agent.errors import Forbidden, NotFound
from agent.planning.replay import export_replay
from agent.pricing import PRICING_FILE_VARIABLE
from agent.users import add_first_user
from agent.versions.document import parse_version
from storage import migrate
from storage.engine import create_engine, read_session
from storage.enums import ErrorClass, RunStatus, StepKind
from storage.models import Agent, Review, Run, Step, ToolCall, metadata
from tests.support.chat_server import ChatServer, Reply, calls, final, serve
from tests.support.cli import ok, refused, steward
from tests.support.runtime import (
    ENGINEER,
    OPERATOR,
    Effects,
    drive,
    install_agent,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)

KEY_VARIABLE = "STEWARD_TEST_CHAT_KEY"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "sk-replay-test-key-0000")
    monkeypatch.delenv(PRICING_FILE_VARIABLE, raising=False)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'replay.db'}")
    metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    yield from serve()


def _chat_version(url: str) -> dict[str, Any]:
    document = scripted_version([])
    document["planner"] = {
        "kind": "chat",
        "model": "gpt-4o",  # the server answers as gpt-4o-mini, which the replay must keep
        "base_url": url,
        "api_key_env": KEY_VARIABLE,
    }
    return document


def _run_of(engine: Engine, agent: str) -> Run:
    with read_session(engine) as session:
        return session.exec(
            select(Run).join(Agent, col(Agent.id) == col(Run.agent_id)).where(Agent.name == agent)
        ).one()


def _approve_open_review(engine: Engine, run_id: int) -> None:
    with read_session(engine) as session:
        review = session.exec(
            select(Review).where(Review.run_id == run_id).where(Review.status == "pending")
        ).one()
    reviews.approve(platform_for(engine), OPERATOR, review.id or 0, reason="checked")


def _trace(engine: Engine, run_id: int) -> list[tuple[Any, ...]]:
    """What governance saw and decided, step by step (proposal steps without their planner's
    name and model telemetry, which differ between a model and its script)."""
    with read_session(engine) as session:
        steps = session.exec(
            select(Step).where(Step.run_id == run_id).order_by(col(Step.seq))
        ).all()
    return [
        (
            s.kind,
            None if s.kind in (StepKind.PROPOSAL, StepKind.INVOKE_AGENT) else s.name,
            s.status,
            s.error_class,
            s.call_id,
            s.output if s.kind in (StepKind.PROPOSAL, StepKind.OBSERVATION) else None,
            s.attributes.get("effect"),
            s.attributes.get("rule_id"),
        )
        for s in steps
        if s.kind is not StepKind.HUMAN_APPROVAL
    ]


def _ledger(engine: Engine, run_id: int) -> list[tuple[Any, ...]]:
    with read_session(engine) as session:
        rows = session.exec(
            select(ToolCall).where(ToolCall.run_id == run_id).order_by(col(ToolCall.id))
        ).all()
    return [(r.call_id, r.tool, r.args, r.status) for r in rows]


def _record(engine: Engine, chat: ChatServer, effects: Effects) -> Run:
    """A chat run with parallel calls, an escalation, bad arguments and a planner error."""
    install_agent(engine, "shop", _chat_version(chat.url))
    chat.answer(
        calls(
            ("lookup", {"order_id": "O1"}),
            ("pay", {"order_id": "O1", "amount": 500.0}),
            content="Look up and refund.",
            usage=(900, 60),
        ),
        calls(("notify", '{"to": "c@exa'), usage=(1200, 30)),
        Reply(body="upstream connect error"),
        calls(("notify", {"to": "c@example.com"}), usage=(1300, 25)),
        final({"resolution": "refunded"}, usage=(1400, 15)),
    )
    submit(engine, "shop", {"order_id": "O1", "message": "please refund"})
    registry = shop_registry(effects)
    assert drive(engine, registry) == [RunStatus.WAITING_REVIEW]
    run = _run_of(engine, "shop")
    _approve_open_review(engine, run.id or 0)
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    return _run_of(engine, "shop")


def test_a_chat_run_replays_as_a_scripted_run_without_the_model(
    engine: Engine, chat: ChatServer
) -> None:
    original = _record(engine, chat, Effects())
    asked = len(chat.received)
    script = export_replay(platform_for(engine), ENGINEER, original.id or 0)
    assert (script.agent, script.version, script.turns) == ("shop", 1, 5)
    assert script.task == {"order_id": "O1", "message": "please refund"}
    parsed = parse_version(script.yaml_text)  # the file is a valid version as it stands
    assert parsed.document == script.document
    planner = script.document["planner"]
    assert (planner["kind"], planner["model"]) == ("scripted", "gpt-4o-mini")
    assert planner["script"][0] == {
        "reasoning": "Look up and refund.",
        "calls": [
            {"id": "t0c0", "tool": "lookup", "args": {"order_id": "O1"}},
            {"id": "t0c1", "tool": "pay", "args": {"order_id": "O1", "amount": 500.0}},
        ],
        "prompt_tokens": 900,
        "completion_tokens": 60,
    }
    assert planner["script"][1]["calls"][0]["args"] == '{"to": "c@exa'  # malformed, as sent
    assert "not JSON" in planner["script"][2]["error"]
    assert script.document["policy"] == _chat_version(chat.url)["policy"]

    install_agent(engine, "shop-replay", script.document)
    submit(engine, "shop-replay", script.task)
    effects = Effects()
    registry = shop_registry(effects)
    assert drive(engine, registry) == [RunStatus.WAITING_REVIEW]
    replay = _run_of(engine, "shop-replay")
    _approve_open_review(engine, replay.id or 0)
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    replay = _run_of(engine, "shop-replay")

    assert len(chat.received) == asked  # not one request to the model
    assert _trace(engine, replay.id or 0) == _trace(engine, original.id or 0)
    assert _ledger(engine, replay.id or 0) == _ledger(engine, original.id or 0)
    assert (replay.status, replay.output) == (original.status, original.output)
    assert (replay.tokens_in, replay.tokens_out) == (original.tokens_in, original.tokens_out)
    assert replay.tokens_in == 4800
    assert replay.cost_usd == pytest.approx(original.cost_usd)
    assert original.cost_usd > 0  # gpt-4o-mini has a default price
    errors = {step[3] for step in _trace(engine, replay.id or 0)}
    assert {ErrorClass.INVALID_ARGUMENTS, ErrorClass.PLANNER_ERROR} <= errors


def test_exporting_needs_a_reader_and_an_existing_run(engine: Engine, chat: ChatServer) -> None:
    original = _record(engine, chat, Effects())
    with pytest.raises(NotFound, match="run 999 does not exist"):
        export_replay(platform_for(engine), ENGINEER, 999)
    with pytest.raises(Forbidden):
        export_replay(platform_for(engine), Actor("nobody", frozenset()), original.id or 0)


def test_steward_export_script_writes_the_replay(chat: ChatServer, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    migrate.upgrade(engine)  # the command refuses a schema not made by its migrations
    try:
        _export_with_the_cli(engine, chat, tmp_path)
    finally:
        engine.dispose()


def _export_with_the_cli(engine: Engine, chat: ChatServer, tmp_path: Path) -> None:
    original = _record(engine, chat, Effects())
    add_first_user(platform_for(engine), "ada", ["admin"], password="ada-password-123")
    out = tmp_path / "replay.yaml"
    run = str(original.id)
    message = ok(steward(engine, "export-script", run, "--out", str(out), "--as", "ada"))
    assert message.strip() == f"wrote the 5-turn replay of run {original.id} to {out}."
    text = out.read_text()
    assert text.startswith(f"# Replay of run {original.id} (agent shop, version 1)")
    assert yaml.safe_load(text)["planner"]["kind"] == "scripted"
    assert ok(steward(engine, "export-script", run, "--as", "ada")) == text
    refused(steward(engine, "export-script", "999", "--as", "ada"), "run 999 does not exist")
