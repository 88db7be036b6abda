"""A worker that lost its claim cannot act: a tool's write is fenced by the call's claim.

The scenario the hardening issue found: a worker paused inside a tool past its lease; another
worker took the run over, asked a person whether the e-mail went out, the person said no; then
the first worker woke up and sent it. With the fence, the late write never commits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from agent import reviews
from agent.demo.data import seed_records
from agent.errors import FenceLost
from agent.plugins import installed_registry
from agent.runtime.claims import claim_next
from agent.tools.base import Fence, ToolContext, ToolSpec
from agent.tools.fencing import fenced_session
from agent.tools.python import PythonTool
from storage.engine import read_session, write_session
from storage.enums import ReviewKind, RunStatus, SideEffect
from storage.models import Review, Run, SupportEmail
from storage.tables import RUNS
from storage.types import utcnow
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

EMAIL = {
    "customer_id": "C-1001",
    "to": "ada.lovelace@example.com",
    "subject": "Your refund",
    "body": "Refunded.",
}


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    with write_session(engine) as session:
        seed_records(session)
    return engine


def _emails(engine: Engine) -> list[SupportEmail]:
    with read_session(engine) as session:
        return list(session.exec(select(SupportEmail)).all())


def _claimed_run(engine: Engine) -> Fence:
    install_agent(engine, "shop", scripted_version([{"final": {"resolution": "done"}}]))
    submit(engine, "shop", {"order_id": "O1"})
    claim = claim_next(engine, "worker-a")
    assert claim is not None
    return Fence(claim.run_id, claim.owner, claim.claim_no)


def test_a_write_under_a_stale_claim_never_commits(seeded: Engine) -> None:
    send = installed_registry().tool("send_email")
    fence = _claimed_run(seeded)
    current = ToolContext(fence.run_id, "k1", 2.0, seeded, fence=fence)
    assert send.call(EMAIL, current)["status"] == "sent"
    with write_session(seeded) as session:  # another worker takes the run over
        session.execute(
            sa.update(RUNS)
            .where(RUNS.c.id == fence.run_id)
            .values(lease_owner="worker-b", claims=2)
        )
    stale = ToolContext(fence.run_id, "k2", 2.0, seeded, fence=fence)
    with pytest.raises(FenceLost, match="no longer held"):
        send.call(EMAIL, stale)
    assert len(_emails(seeded)) == 1


def test_a_call_the_runtime_stopped_waiting_for_cannot_write_back(seeded: Engine) -> None:
    send = installed_registry().tool("send_email")
    fence = _claimed_run(seeded)
    ctx = ToolContext(fence.run_id, "k1", 2.0, seeded, fence=fence)
    ctx.cancelled.set()
    with pytest.raises(FenceLost, match="outlived its timeout"):
        send.call(EMAIL, ctx)
    # A write begun before the timeout passed does not commit after it.
    late = ToolContext(fence.run_id, "k3", 2.0, seeded, fence=fence)
    with (  # noqa: PT012 - the write and the timeout happen inside the one transaction
        pytest.raises(FenceLost, match="outlived its timeout"),
        fenced_session(late) as session,
    ):
        session.add(SupportEmail(**_row("k3", fence.run_id)))
        session.flush()
        late.cancelled.set()
    assert _emails(seeded) == []


def _row(key: str, run_id: int) -> dict[str, Any]:
    return {
        "customer_id": "C-1001",
        "to_address": "ada.lovelace@example.com",
        "subject": "s",
        "body": "b",
        "idempotency_key": key,
        "run_id": run_id,
    }


def test_a_worker_paused_past_its_lease_does_not_send_after_a_person_said_it_did_not(
    seeded: Engine,
) -> None:
    paused, resumed = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def mail(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        paused.set()
        resumed.wait(30)  # the worker's process is stopped here, past its lease
        with fenced_session(ctx) as session:
            session.add(SupportEmail(**_row(ctx.idempotency_key, ctx.run_id)))
        return {"sent": True}

    registry = shop_registry(Effects())
    registry.register_tool(
        PythonTool(
            ToolSpec(
                "mail",
                "Send mail.",
                {"type": "object"},
                {"type": "object"},
                SideEffect.WRITE,
                False,
                ("email",),
                inline=True,
            ),
            mail,
        )
    )
    document = scripted_version(
        [
            {"reasoning": "mail", "calls": [{"tool": "mail", "args": {}}]},
            {"final": {"resolution": "done"}},
        ]
    )
    document["tools"].append("mail")
    install_agent(seeded, "shop", document)
    submit(seeded, "shop", {"order_id": "O1"})

    def first_worker() -> None:
        outcome["status"] = drive(seeded, registry, owner="worker-a", max_claims=1)

    thread = threading.Thread(target=first_worker)
    thread.start()
    assert paused.wait(30)
    with write_session(seeded) as session:  # the lease lapses while worker-a is stopped
        session.execute(sa.update(RUNS).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert drive(seeded, registry, owner="worker-b") == [RunStatus.WAITING_REVIEW]
    with read_session(seeded) as session:
        review = session.exec(select(Review)).one()
    assert review.kind is ReviewKind.OUTCOME_UNKNOWN
    reviews.reject(platform_for(seeded, registry), OPERATOR, review.id or 0, "no mail went out")
    resumed.set()  # worker-a wakes up inside the tool
    thread.join(30)
    time.sleep(0.1)
    assert _emails(seeded) == []  # its write was fenced off
    assert outcome["status"] == [RunStatus.RUNNING]  # and it stopped touching the run
    assert drive(seeded, registry, owner="worker-b") == [RunStatus.SUCCEEDED]
    with read_session(seeded) as session:
        assert session.exec(select(Run)).one().status is RunStatus.SUCCEEDED
    assert _emails(seeded) == []
