"""Runs whose traces the telemetry tests export: a refund a person approves, one they reject,
and calls that touch secrets."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.telemetry.export import TraceExport
from agent.tools.registry import ToolRegistry
from storage.engine import read_session
from storage.enums import ReviewStatus
from storage.models import Review
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

SECRETS = ("tok-SECRET-123", "sk-live-TASKSECRET", "pw-ARGSECRET")


def refund_script(amount: float) -> list[dict[str, Any]]:
    """Look the order up, refund ``amount``, answer; each turn a model call with its tokens."""
    return [
        {
            "reasoning": "look the order up",
            "calls": [{"tool": "lookup", "args": {"order_id": "O1"}}],
            "prompt_tokens": 120,
            "completion_tokens": 30,
        },
        {
            "reasoning": f"refund {amount}",
            "calls": [{"tool": "pay", "args": {"order_id": "O1", "amount": amount}}],
            "prompt_tokens": 200,
            "completion_tokens": 40,
        },
        {
            "reasoning": "done",
            "final": {"resolution": "refunded"},
            "prompt_tokens": 260,
            "completion_tokens": 20,
        },
    ]


def secret_script() -> list[dict[str, Any]]:
    """A notification whose arguments and result carry secrets (the result's ``api_token``
    comes from the shop's ``notify`` tool)."""
    return [
        {
            "reasoning": "tell the customer",
            "calls": [{"tool": "notify", "args": {"to": "c@example.com", "password": SECRETS[2]}}],
        },
        {"reasoning": "done", "final": {"resolution": "notified"}},
    ]


def parked_refund(engine: Engine, amount: float = 300.0) -> tuple[Effects, ToolRegistry, int]:
    """A refund run parked on its escalation; returns the effects, the tools and the review."""
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(engine, "shop", scripted_version(refund_script(amount)))
    submit(engine, "shop", {"order_id": "O1"})
    drive(engine, registry)
    return effects, registry, pending_review(engine)


def approve_and_finish(engine: Engine, registry: ToolRegistry, review_id: int) -> None:
    """olga approves the review; the run resumes and finishes."""
    reviews.approve(platform_for(engine, registry), OPERATOR, review_id)
    drive(engine, registry)


def approved_refund(engine: Engine, amount: float = 300.0) -> tuple[Effects, int]:
    """A refund run approved by olga and driven to the end; returns the effects and the
    review's id."""
    effects, registry, review = parked_refund(engine, amount)
    approve_and_finish(engine, registry, review)
    return effects, review


def pending_review(engine: Engine) -> int:
    with read_session(engine) as session:
        review = session.exec(
            select(Review).where(col(Review.status) == ReviewStatus.PENDING)
        ).first()
    assert review is not None and review.id is not None
    return review.id


def otlp_export(
    engine: Engine, url: str, *, content: bool = False, owner: str = "test-exporter"
) -> TraceExport:
    """The export job sending to ``url`` over OTLP/HTTP, with short timeouts and backoff."""
    return TraceExport(
        engine,
        OTLPSpanExporter(endpoint=url, timeout=1.0),
        owner=owner,
        resource=Resource({"service.name": "steward-test"}),
        content=content,
        max_backoff_s=0.5,
    )
