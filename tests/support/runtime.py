"""Test fixtures for the runtime: a small tool domain, versions written as YAML, a driver.

The tools keep their effects in a table-free, in-process ledger keyed by idempotency key, so a
test can count exactly how often a side effect happened.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy.engine import Engine
from sqlmodel import select

from agent.actors import Actor
from agent.errors import ToolError
from agent.mediation.ratelimit import reset_counters
from agent.platform import Platform
from agent.plugins import installed_registry
from agent.runtime.claims import claim_next
from agent.runtime.runner import RunProcessor
from agent.spec import VERSION_SCHEMA
from agent.tasks import submit_task
from agent.tools.base import ToolContext, ToolSpec
from agent.tools.python import PythonTool
from agent.tools.registry import ToolRegistry
from agent.tools.validation import compiled_validator
from storage.engine import read_session, write_session
from storage.enums import RunStatus, SideEffect
from storage.models import Agent, AgentVersion, Review

ENGINEER = Actor.of("erin", ["engineer"])
OPERATOR = Actor.of("olga", ["operator"])
MANAGER = Actor.of("mona", ["manager"])


class Effects:
    """Counts side effects by idempotency key, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_key: Counter[str] = Counter()
        self.payments: dict[str, float] = {}

    def record(self, key: str) -> int:
        with self.lock:
            self.by_key[key] += 1
            return self.by_key[key]


def shop_registry(effects: Effects, *, flaky: PythonTool | None = None) -> ToolRegistry:
    """lookup (read), pay (write, idempotent by key), notify (write, not idempotent), wipe."""
    registry = ToolRegistry()

    def lookup(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"order_id": args["order_id"], "amount": 40.0, "email": "c@example.com"}

    def pay(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        with effects.lock:
            if ctx.idempotency_key not in effects.payments:
                effects.by_key[ctx.idempotency_key] += 1
                effects.payments[ctx.idempotency_key] = float(args["amount"])
        return {"paid": effects.payments[ctx.idempotency_key]}

    def notify(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        effects.record(ctx.idempotency_key)
        return {"sent": True, "api_token": "tok-SECRET-123"}

    def wipe(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        effects.record(ctx.idempotency_key)
        return {"wiped": True}

    def slow_notify(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        effects.record(ctx.idempotency_key)
        time.sleep(float(args.get("seconds", 2)))
        return {"sent": True}

    def broken(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise ToolError("the service answered 503", retryable=True)

    obj = {"type": "object"}
    registry.register_tool(
        PythonTool(
            ToolSpec(
                "lookup",
                "Look up an order.",
                {
                    "type": "object",
                    "required": ["order_id"],
                    "properties": {"order_id": {"type": "string"}},
                    "additionalProperties": False,
                },
                data_sources=("orders",),
            ),
            lookup,
        )
    )
    registry.register_tool(
        PythonTool(
            ToolSpec(
                "pay",
                "Refund an amount.",
                {
                    "type": "object",
                    "required": ["order_id", "amount"],
                    "properties": {
                        "order_id": {"type": "string"},
                        "amount": {"type": "number", "minimum": 0},
                    },
                    "additionalProperties": False,
                },
                {"type": "object", "required": ["paid"]},
                SideEffect.WRITE,
                True,
                ("payments",),
            ),
            pay,
        )
    )
    registry.register_tool(
        PythonTool(
            ToolSpec(
                "notify",
                "Send a message.",
                {"type": "object", "required": ["to"], "properties": {"to": {"type": "string"}}},
                obj,
                SideEffect.WRITE,
                False,
                ("email",),
            ),
            notify,
        )
    )
    registry.register_tool(
        PythonTool(
            ToolSpec("slow_notify", "Send slowly.", obj, obj, SideEffect.WRITE, False, ("email",)),
            slow_notify,
        )
    )
    registry.register_tool(
        PythonTool(
            ToolSpec(
                "wipe",
                "Delete customer data.",
                obj,
                obj,
                SideEffect.IRREVERSIBLE,
                False,
                ("orders",),
            ),
            wipe,
        )
    )
    registry.register_tool(
        PythonTool(
            ToolSpec("broken", "Always 503.", obj, obj, SideEffect.READ, True, ("orders",)), broken
        )
    )
    registry.register_tool(
        PythonTool(
            ToolSpec(
                "crm_export", "Export from the CRM.", obj, obj, SideEffect.READ, True, ("crm",)
            ),
            lookup,
        )
    )
    if flaky is not None:
        registry.register_tool(flaky)
    return registry


SHOP_POLICY = {
    "default": "allow",
    "rules": [
        {
            "id": "pay-small",
            "tool": "pay",
            "when": "args.amount <= 100.0",
            "effect": "allow",
            "reason": "small refunds are fine",
        },
        {
            "id": "pay-medium",
            "tool": "pay",
            "when": "args.amount > 100.0 && args.amount <= 1000.0",
            "effect": "escalate",
            "reason": "refunds over $100 need an operator",
            "sla_minutes": 30,
        },
        {
            "id": "pay-large",
            "tool": "pay",
            "when": "args.amount > 1000.0",
            "effect": "deny",
            "reason": "refunds over $1000 are not allowed",
            "override_roles": ["manager"],
        },
        {
            "id": "run-total",
            "tool": "pay",
            "when": "has(run.sums.pay) && run.sums.pay.amount + args.amount > 1500.0",
            "effect": "deny",
            "reason": "a run may refund at most $1500 in total",
        },
        {"id": "no-wipe", "tool": "wipe", "effect": "deny", "reason": "deleting data is forbidden"},
    ],
}


def scripted_version(script: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "description": "scripted test version",
        "planner": {"kind": "scripted", "model": "script", "script": script},
        "tools": ["lookup", "pay", "notify", "slow_notify", "wipe", "broken"],
        "data_sources": ["orders", "payments", "email"],
        "policy": SHOP_POLICY,
        "rate_limits": [{"tool": "notify", "limit": "2/minute"}],
        "budgets": {
            "max_steps": 80,
            "run_deadline_s": 60,
            "call_timeout_s": 1.0,
            "max_denials": 10,
            "max_consecutive_failures": 3,
        },
        "retries": {
            "max_attempts": 3,
            "initial_backoff_s": 0.001,
            "max_backoff_s": 0.01,
            "jitter_s": 0.001,
        },
        "output": {"schema": {"type": "object", "required": ["resolution"]}},
    }
    doc.update(overrides)
    return doc


def install_agent(engine: Engine, name: str, document: dict[str, Any]) -> int:
    """Store an agent with one active version (bypassing the versions service on purpose:
    these tests are about the runtime). Returns the version id."""
    compiled_validator(VERSION_SCHEMA).validate(document)
    reset_counters()
    with write_session(engine) as session:
        agent = Agent(name=name)
        session.add(agent)
        session.flush()
        assert agent.id is not None
        version = AgentVersion(
            agent_id=agent.id,
            number=1,
            content_hash=name,
            policy_hash="p",
            spec=document,
            source_yaml=yaml.safe_dump(document),
            created_by="erin",
        )
        session.add(version)
        session.flush()
        agent.active_version_id = version.id
        session.add(agent)
        assert version.id is not None
        return version.id


def submit(engine: Engine, agent: str, task: dict[str, Any]) -> int:
    return submit_task(platform_for(engine), OPERATOR, agent, task)


_PLATFORMS: dict[tuple[int, int], tuple[Engine, ToolRegistry | None, Platform, RunProcessor]] = {}


def platform_for(engine: Engine, registry: ToolRegistry | None = None) -> Platform:
    """The test's composition root for ``engine`` and ``registry``: one per pair, so the
    services a test calls and the runs it drives share compiled versions, breakers and rate
    limits as one process would. Without a registry: the platform this engine's runs were last
    driven with, else one with the installed tools."""
    if registry is None:
        for held_engine, _, platform, _ in reversed(_PLATFORMS.values()):
            if held_engine is engine:
                return platform
    return _processor(engine, registry).platform


def _processor(engine: Engine, registry: ToolRegistry | None) -> RunProcessor:
    key = (id(engine), id(registry))
    found = _PLATFORMS.get(key)
    if found is None or found[0] is not engine or found[1] is not registry:
        if len(_PLATFORMS) > 16:  # keep the objects whose ids are keys alive, but not for ever
            _PLATFORMS.pop(next(iter(_PLATFORMS)))[2].close()
        platform = Platform(engine, registry if registry is not None else installed_registry())
        found = (engine, registry, platform, RunProcessor(platform, lease_s=30))
        _PLATFORMS[key] = found
    return found[3]


def drive(
    engine: Engine,
    registry: ToolRegistry | None = None,
    *,
    owner: str = "test-worker",
    max_claims: int = 50,
) -> list[RunStatus]:
    """Claim and process runs in this thread until nothing is claimable."""
    processor = _processor(engine, registry)
    statuses = []
    for _ in range(max_claims):
        claim = claim_next(engine, owner)
        if claim is None:
            break
        statuses.append(processor.process(claim))
    return statuses


@dataclass
class ParkedPayment:
    """A shop run parked on the review its one payment raised."""

    effects: Effects
    registry: ToolRegistry
    review: Review
    statuses: list[RunStatus]


def park_payment(
    engine: Engine, amount: float, *, order_id: str = "O1", resolution: str = "refunded"
) -> ParkedPayment:
    """Install a shop agent that proposes one payment of ``amount`` and then answers
    ``resolution``; run it until it parks on the (one) review the payment raises."""
    effects = Effects()
    registry = shop_registry(effects)
    script = [
        {
            "reasoning": f"refund {amount}",
            "calls": [{"tool": "pay", "args": {"order_id": order_id, "amount": amount}}],
        },
        {"reasoning": "done", "final": {"resolution": resolution}},
    ]
    install_agent(engine, "shop", scripted_version(script))
    submit(engine, "shop", {"order_id": order_id})
    statuses = drive(engine, registry)
    with read_session(engine) as session:
        review = session.exec(select(Review)).one()
    return ParkedPayment(effects, registry, review, statuses)
