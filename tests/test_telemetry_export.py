"""Trace export: GenAI spans built from committed rows reach a real OTLP/HTTP receiver on
loopback, as one trace per run, the review as a child of the decision it answers; a repeated
send is the same spans; secrets never leave."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.telemetry import cursor
from agent.telemetry.ids import SpanIds
from agent.telemetry.rows import load
from storage.engine import read_session, write_connection
from storage.enums import RunStatus, StepKind
from storage.models import Run, Step
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.runtime import (
    OPERATOR,
    Effects,
    drive,
    install_agent,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)
from tests.support.telemetry import (
    SECRETS,
    approve_and_finish,
    approved_refund,
    otlp_export,
    parked_refund,
    pending_review,
    refund_script,
    secret_script,
)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


def _named(spans: list[ReceivedSpan], prefix: str) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.name.startswith(prefix)), key=lambda s: s.start_ns)


def test_an_approved_refund_is_one_trace_with_its_decisions_and_the_review(
    engine: Engine, receiver: OtlpReceiver
) -> None:
    effects, registry, review_id = parked_refund(engine)
    export = otlp_export(engine, receiver.url)
    parked = export.run_once()  # the run parked: what it did so far leaves now
    approve_and_finish(engine, registry, review_id)
    assert list(effects.payments.values()) == [300.0]

    resumed_tick = export.run_once()

    spans = receiver.received()
    assert parked.sent_segments == resumed_tick.sent_segments == 1
    assert parked.sent_spans + resumed_tick.sent_spans == len(spans)
    assert len({s.trace_id for s in spans}) == 1  # one run, one trace
    ids = SpanIds(cursor.installation_key(engine))
    with read_session(engine) as session:
        run = session.exec(select(Run)).one()
    assert spans[0].trace_id == f"{ids.trace(run.id or 0):032x}"
    assert {s.resource["service.name"] for s in spans} == {"steward-test"}

    agents = _named(spans, "invoke_agent ")
    assert [s.name for s in agents] == ["invoke_agent shop", "invoke_agent shop"]
    first, resumed = agents
    assert first.parent_span_id == ""  # the run's root
    assert resumed.parent_span_id == first.span_id  # the resumed segment: same trace...
    assert resumed.links == ((first.trace_id, first.span_id),)  # ...linked to the first
    assert first.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert first.attributes["steward.run.status"] == "waiting_review"
    assert resumed.attributes["steward.run.status"] == "succeeded"
    assert resumed.status_code == Status.STATUS_CODE_OK

    chats = _named(spans, "chat ")
    assert [c.name for c in chats] == ["chat script"] * 3
    assert [c.attributes["gen_ai.usage.input_tokens"] for c in chats] == [120, 200, 260]
    assert [c.attributes["gen_ai.usage.output_tokens"] for c in chats] == [30, 40, 20]
    assert all(c.attributes["gen_ai.operation.name"] == "chat" for c in chats)

    guardrails = _named(spans, "run_guardrail ")
    assert {g.name for g in guardrails} == {"run_guardrail shop.policy"}
    verdicts = [
        (
            g.attributes["gen_ai.tool.name"],
            g.attributes["gen_ai.guardrail.verdict.type"],
            g.attributes.get("gen_ai.guardrail.security.policy.rule.id"),
        )
        for g in guardrails
    ]
    assert verdicts == [
        ("lookup", "allow", "default"),
        ("pay", "escalate", "pay-medium"),
        ("pay", "allow", "pay-medium"),  # the approved call, through the gate again
    ]
    escalated = guardrails[1]
    assert escalated.attributes["gen_ai.guardrail.target.type"] == "tool_call"
    assert escalated.attributes["gen_ai.guardrail.target.id"] == "t1c0"
    assert escalated.attributes["gen_ai.guardrail.security.policy.id"]
    assert guardrails[2].attributes["steward.guardrail.authorized"] is True

    tools = _named(spans, "execute_tool ")
    assert [t.name for t in tools] == ["execute_tool lookup", "execute_tool pay"]
    assert tools[1].attributes["gen_ai.tool.call.id"] == "t1c0"

    (review,) = _named(spans, "steward.review ")
    assert review.name == "steward.review pay"
    assert review.parent_span_id == escalated.span_id  # a child of the proposed call's decision
    assert review.span_id == f"{ids.review(review_id):016x}"
    assert review.attributes["steward.review.reviewer"] == "olga"
    assert review.attributes["steward.review.decision"] == "approved"
    assert review.attributes["steward.review.edited"] is False
    assert len(review.attributes["steward.review.args_hash"]) == 64
    assert review.attributes["steward.review.sla_due_at"]
    assert review.attributes["steward.review.waiting_s"] >= 0.0

    # Every span but the segments belongs to a segment of this trace, or to the decision.
    by_id = receiver.by_id()
    for span in spans:
        if span.parent_span_id:
            assert span.parent_span_id in by_id

    # Nothing new: the next turn sends nothing, and the backlog is empty.
    assert export.run_once().sent_spans == 0
    assert cursor.backlog(engine) == cursor.Backlog(0, 0)


def test_a_rejected_call_stays_visible_as_proposed_and_refused(
    engine: Engine, receiver: OtlpReceiver
) -> None:
    effects = Effects()
    registry = shop_registry(effects)
    script = refund_script(500.0)
    script[2] = {"reasoning": "give up", "final": {"resolution": "escalated"}}
    install_agent(engine, "shop", scripted_version(script))
    submit(engine, "shop", {"order_id": "O1"})
    drive(engine, registry)
    reviews.reject(platform_for(engine, registry), OPERATOR, pending_review(engine), "no proof")
    drive(engine, registry)
    otlp_export(engine, receiver.url).run_once()

    spans = receiver.received()
    (review,) = _named(spans, "steward.review ")
    assert review.attributes["steward.review.decision"] == "rejected"
    assert review.status_code == Status.STATUS_CODE_ERROR
    decision = receiver.by_id()[review.parent_span_id]
    assert decision.attributes["gen_ai.guardrail.verdict.type"] == "escalate"
    assert [t.name for t in _named(spans, "execute_tool ")] == ["execute_tool lookup"]
    assert effects.payments == {}
    assert "steward.review.reason" not in review.attributes  # a person's words are content


def test_a_send_repeated_after_a_crash_is_the_same_spans(
    engine: Engine, receiver: OtlpReceiver
) -> None:
    approved_refund(engine)
    export = otlp_export(engine, receiver.url)
    # A turn that planned and sent its segments but died before marking them sent.
    segments = cursor.plan(engine, limit=100)
    export.exporter.export(export.builder.build(load(engine, segments)))
    first = receiver.received()

    export.run_once()  # the next turn sends the planned segments again

    again = receiver.received()[len(first) :]
    assert len(again) == len(first)
    assert sorted(first, key=lambda s: s.span_id) == sorted(again, key=lambda s: s.span_id)
    assert export.run_once().sent_spans == 0


@pytest.mark.parametrize("content", [False, True])
def test_no_secret_and_no_redaction_placeholder_leaves(
    engine: Engine, receiver: OtlpReceiver, content: bool
) -> None:
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(engine, "shop", scripted_version(secret_script()))
    submit(engine, "shop", {"order_id": "O1", "api_key": SECRETS[1]})
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    export = otlp_export(engine, receiver.url, content=content)
    assert export.run_once().sent_spans > 0

    payload = b"".join(receiver.bodies)
    for secret in (*SECRETS, "[redacted]"):
        assert secret.encode() not in payload
    tool = next(s for s in receiver.received() if s.name == "execute_tool notify")
    if content:  # contents left, only without what the trace redacted
        assert tool.attributes["gen_ai.tool.call.arguments"] == '{"to": "c@example.com"}'
        assert tool.attributes["gen_ai.tool.call.result"] == '{"sent": true}'
    else:
        assert "gen_ai.tool.call.arguments" not in tool.attributes
        assert not any("gen_ai.output.messages" in s.attributes for s in receiver.received())


def test_evaluation_runs_and_running_runs_wait_or_stay_out(
    engine: Engine, receiver: OtlpReceiver
) -> None:
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(engine, "shop", scripted_version(refund_script(300.0)))
    submit(engine, "shop", {"order_id": "O1"})
    drive(engine, registry)
    with write_connection(engine) as connection:  # the run seen as still running
        connection.execute(sa.update(Run).values(status=RunStatus.RUNNING))
    export = otlp_export(engine, receiver.url)
    assert export.run_once().sent_spans == 0
    assert cursor.backlog(engine).runs == 1  # its committed steps wait
    with write_connection(engine) as connection:
        connection.execute(sa.update(Run).values(status=RunStatus.WAITING_REVIEW))
    assert export.run_once().sent_segments == 1
    with read_session(engine) as session:
        proposals = session.exec(select(Step).where(col(Step.kind) == StepKind.PROPOSAL)).all()
    assert len(_named(receiver.received(), "chat ")) == len(proposals) == 2


def test_one_process_exports_at_a_time(engine: Engine, receiver: OtlpReceiver) -> None:
    approved_refund(engine)
    first = otlp_export(engine, receiver.url, owner="worker-a")
    second = otlp_export(engine, receiver.url, owner="worker-b")
    first.builder  # noqa: B018 - creates the cursor
    assert cursor.take_turn(engine, "worker-a", lease_s=60)  # worker-a is mid-turn

    assert second.run_once().skipped
    assert receiver.received() == []
    cursor.end_turn(engine, "worker-a")
    assert second.run_once().sent_segments == 1
    assert first.run_once().sent_spans == 0  # nothing left for the other
