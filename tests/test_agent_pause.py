"""The emergency brake: a paused agent starts no run and a running one parks before its next
call; resuming lets its work go on from where it stopped; both are audited."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import Actor
from agent.demo.seed import seed_demo
from agent.errors import Forbidden, InvalidInput
from agent.release.brake import pause_agent, paused_agents, resume_agent
from agent.tasks import submit_task
from agent.tools.base import ToolContext, ToolSpec
from agent.tools.python import PythonTool
from storage.engine import read_session
from storage.enums import RunStatus, TaskStatus
from storage.models import Agent, AuditEvent, Run, Task
from tests.support.cli import ok, refused, steward
from tests.support.runtime import (
    Effects,
    drive,
    install_agent,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)

OLGA = Actor.of("olga", ["operator"])
MONA = Actor.of("mona", ["manager"])
ERIN = Actor.of("erin", ["engineer"])


def _tasks(engine: Engine, agent: str) -> list[tuple[TaskStatus, int]]:
    """Each task of the agent: its status and how many runs it has."""
    with read_session(engine) as session:
        agent_id = session.exec(select(Agent.id).where(col(Agent.name) == agent)).one()
        tasks = session.exec(select(Task).where(col(Task.agent_id) == agent_id)).all()
        runs = session.exec(select(Run.task_id).where(col(Run.agent_id) == agent_id)).all()
    return [(t.status, runs.count(t.id)) for t in tasks]


def test_a_real_worker_starts_no_run_of_a_paused_agent(migrated: Engine) -> None:
    platform = platform_for(migrated)
    seed_demo(platform, with_tasks=False)
    for customer, order, amount, ticket in (
        ("C-1001", "O-5001", 45.0, "T-9001"),
        ("C-1002", "O-5002", 20.0, "T-9002"),
        ("C-1010", "O-5010", 32.0, "T-9010"),
    ):
        task = {
            "intent": "refund",
            "customer_id": customer,
            "order_id": order,
            "amount": amount,
            "ticket_id": ticket,
            "reason": "damaged",
            "message": f"Please refund ${amount:.0f}.",
        }
        submit_task(platform, OLGA, "support", task)
    submit_task(
        platform,
        OLGA,
        "it-access",
        {"intent": "password_reset", "employee_id": "E-2001", "message": "Locked out."},
    )
    ok(steward(migrated, "pause", "support", "--reason", "refund spike", "--as", "olga"))
    listed = json.loads(ok(steward(migrated, "paused", "--json", "--as", "erin")))
    assert [(p["agent"], p["paused_by"], p["reason"]) for p in listed] == [
        ("support", "olga", "refund spike")
    ]

    # The stock drain exits with the paused agent's work still queued, and runs the rest.
    ok(steward(migrated, "worker", "--drain", timeout=180))
    assert _tasks(migrated, "support") == [(TaskStatus.QUEUED, 0)] * 3
    assert [runs for _, runs in _tasks(migrated, "it-access")] == [1]

    refused(steward(migrated, "resume", "support", "--reason", "x", "--as", "mona"), "mona")
    refused(steward(migrated, "resume", "support", "--as", "olga"), "--reason")
    ok(steward(migrated, "resume", "support", "--reason", "spike explained", "--as", "olga"))
    ok(steward(migrated, "worker", "--drain", timeout=180))
    assert _tasks(migrated, "support") == [(TaskStatus.SUCCEEDED, 1)] * 3

    with read_session(migrated) as session:
        events = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.action).in_(("agent.pause", "agent.resume")))
            .order_by(col(AuditEvent.id))
        ).all()
    assert [(e.action, e.actor, e.payload["reason"]) for e in events] == [
        ("agent.pause", "olga", "refund spike"),
        ("agent.resume", "olga", "spike explained"),
    ]


def test_a_running_run_parks_before_its_next_call_and_resumes_there(engine: Engine) -> None:
    effects = Effects()
    platform_holder: dict[str, Any] = {}

    def brake(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        pause_agent(platform_holder["platform"], OLGA, "shop", reason="stop after the lookup")
        return {"braked": True}

    registry = shop_registry(
        effects,
        flaky=PythonTool(ToolSpec("brake", "Pull the brake.", {"type": "object"}), brake),
    )
    script = [
        {
            "reasoning": "look up, brake, then pay and notify in the same turn",
            "calls": [
                {"tool": "brake", "args": {}},
                {"tool": "pay", "args": {"order_id": "O1", "amount": 40.0}},
                {"tool": "notify", "args": {"to": "c@example.com"}},
            ],
        },
        {"reasoning": "done", "final": {"resolution": "refunded"}},
    ]
    document = scripted_version(script)
    document["tools"] = [*document["tools"], "brake"]
    install_agent(engine, "shop", document)
    platform_holder["platform"] = platform_for(engine, registry)
    submit(engine, "shop", {"order_id": "O1"})

    assert drive(engine, registry) == [RunStatus.READY]
    assert effects.payments == {}  # the calls after the brake were not made
    assert drive(engine, registry) == []  # nothing of a paused agent is claimed
    with pytest.raises(Forbidden):
        resume_agent(platform_holder["platform"], MONA, "shop", reason="manager")
    resume_agent(platform_holder["platform"], ERIN, "shop", reason="checked")
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert list(effects.payments.values()) == [40.0]
    assert sum(effects.by_key.values()) == 2  # one payment, one notification, each once
    with read_session(engine) as session:
        run = session.exec(select(Run)).one()
    assert (run.status, run.claims) == (RunStatus.SUCCEEDED, 2)


def test_the_brake_needs_a_reason_and_a_role(engine: Engine) -> None:
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    with pytest.raises(InvalidInput, match="reason is required"):
        pause_agent(platform, OLGA, "support", reason="  ")
    with pytest.raises(Forbidden):
        pause_agent(platform, Actor.of("ada", ["admin"]), "support", reason="x")
    pause_agent(platform, MONA, "support", reason="looks wrong")
    with pytest.raises(InvalidInput, match="already paused, by mona"):
        pause_agent(platform, OLGA, "support", reason="again")
    assert [p.agent for p in paused_agents(platform, Actor.of("ada", ["admin"]))] == ["support"]
    resume_agent(platform, OLGA, "support", reason="fine")
    with pytest.raises(InvalidInput, match="not paused"):
        resume_agent(platform, OLGA, "support", reason="again")
    assert paused_agents(platform, OLGA) == ()
