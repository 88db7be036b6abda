"""Undo (compensation): an executed call is undone by a new proposed call through the same gate,
linked both ways to the original, recorded as an attempt. End to end with real processes: the
``steward`` command and a real worker (``steward worker --drain``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.actors import Actor
from agent.demo.seed import seed_demo
from agent.errors import Forbidden, InvalidInput
from agent.plugins import installed_registry
from agent.tasks import submit_task
from agent.tools.base import ToolSpec
from agent.undo import compensating_args, undo_call, undo_links
from storage.engine import read_session
from storage.enums import ReviewStatus, RunStatus, TaskStatus, ToolCallStatus
from storage.models import Compensation, ItAccessGrant, Review, Run, Task, ToolCall
from tests.support.cli import ok, refused, steward
from tests.support.runtime import drive, platform_for

OLGA = Actor.of("olga", ["operator"])
OSCAR = Actor.of("oscar", ["operator"])
GRANT = {
    "intent": "access_request",
    "employee_id": "E-2006",
    "app_id": "wiki",
    "access_level": "standard",
    "justification": "documentation",
    "message": "Wiki access please.",
}


@pytest.fixture
def demo(migrated: Engine) -> Engine:
    """The demo's accounts, agents and records, no sample task."""
    seed_demo(platform_for(migrated, installed_registry()), with_tasks=False)
    return migrated


def _calls(engine: Engine, tool: str) -> list[ToolCall]:
    with read_session(engine) as session:
        return list(
            session.exec(
                select(ToolCall).where(col(ToolCall.tool) == tool).order_by(col(ToolCall.id))
            ).all()
        )


def _grants(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        rows = session.exec(
            select(ItAccessGrant)
            .where(col(ItAccessGrant.employee_id) == "E-2006")
            .where(col(ItAccessGrant.app_id) == "wiki")
        ).all()
        return [g.status for g in rows]


def _open_review(engine: Engine) -> Review:
    with read_session(engine) as session:
        return session.exec(
            select(Review).where(col(Review.status).in_(ReviewStatus.open_statuses()))
        ).one()


def test_an_undo_runs_its_revoke_exactly_once_after_its_review_with_a_real_worker(
    demo: Engine,
) -> None:
    ok(steward(demo, "submit", "it-access", "--input", json.dumps(GRANT), "--as", "olga"))
    ok(steward(demo, "worker", "--drain"))
    [grant] = _calls(demo, "grant_access")
    assert grant.status is ToolCallStatus.SUCCEEDED
    assert _grants(demo) == ["active"]
    shown = ok(steward(demo, "runs", "show", str(grant.run_id), "--as", "olga"))
    assert f"call {grant.id}: grant_access succeeded" in shown

    started = ok(
        steward(
            demo, "undo", str(grant.id), "--reason", "granted to the wrong team", "--as", "oscar"
        )
    )
    assert started.startswith(f"undo of call {grant.id} queued as task ")
    ok(steward(demo, "worker", "--drain"))
    review = _open_review(demo)  # the demo policy asks an operator before an undo runs
    assert (review.tool, review.rule_id) == ("revoke_access", "undo-needs-approval")
    assert review.args == {
        "employee_id": "E-2006",
        "app_id": "wiki",
        "reason": f"undo of grant {grant.result['grant_id'] if grant.result else '?'}",
    }
    assert _calls(demo, "revoke_access") == [] and _grants(demo) == ["active"]

    ok(steward(demo, "reviews", "approve", str(review.id), "--as", "otto"))
    ok(steward(demo, "worker", "--drain"))
    ok(steward(demo, "worker", "--drain"))  # nothing is left to run, and nothing runs twice
    [revoke] = _calls(demo, "revoke_access")
    assert (revoke.status, revoke.attempts, revoke.review_id) == (
        ToolCallStatus.SUCCEEDED,
        1,
        review.id,
    )
    assert revoke.result is not None and revoke.result["revoked"] == 1
    assert _grants(demo) == ["revoked"]

    with read_session(demo) as session:
        link = session.exec(select(Compensation)).one()
        undo_run = session.get(Run, revoke.run_id)
        undo_task = session.get(Task, link.task_id)
    assert undo_run is not None and undo_task is not None
    assert (undo_run.task_id, undo_run.status) == (link.task_id, RunStatus.SUCCEEDED)
    assert (undo_task.source, undo_task.submitted_by) == ("undo", "oscar")
    assert (link.original_call_id, link.original_run_id, link.requested_by) == (
        grant.id,
        grant.run_id,
        "oscar",
    )
    platform = platform_for(demo)
    forward = undo_links(platform, OLGA, grant.run_id)
    [attempt] = forward.attempts
    assert (attempt.run_id, attempt.call_status, attempt.compensated) == (
        revoke.run_id,
        ToolCallStatus.SUCCEEDED,
        True,
    )
    assert forward.undoes is None
    backward = undo_links(platform, OLGA, revoke.run_id)
    assert backward.attempts == ()
    assert backward.undoes is not None and backward.undoes.original_call_id == grant.id

    refused(
        steward(demo, "undo", str(grant.id), "--reason", "again", "--as", "oscar"),
        f"call {grant.id} already has an undo (task {link.task_id}) that compensated it",
    )


def test_an_undo_a_person_rejects_does_not_run_and_may_be_started_again(demo: Engine) -> None:
    platform = platform_for(demo, installed_registry())
    submit_task(platform, OLGA, "it-access", GRANT)
    drive(demo, installed_registry())
    [grant] = _calls(demo, "grant_access")
    assert grant.id is not None
    undo_call(platform, OSCAR, grant.id, reason="wrong person")
    with pytest.raises(InvalidInput, match=r"already has an undo \(task \d+\) that is queued"):
        undo_call(platform, OSCAR, grant.id, reason="twice")
    drive(demo, installed_registry())
    reviews.reject(platform, Actor.of("otto", ["operator"]), _open_review(demo).id or 0, "keep it")
    drive(demo, installed_registry())
    assert _calls(demo, "revoke_access") == [] and _grants(demo) == ["active"]
    [attempt] = undo_links(platform, OLGA, grant.run_id).attempts
    assert (attempt.task_status, attempt.call_status) == (TaskStatus.SUCCEEDED, None)
    with read_session(demo) as session:
        run = session.get(Run, attempt.run_id)
    assert run is not None and run.output is not None
    assert run.output["resolution"] == "declined"
    assert "rejected by otto: keep it" in run.output["summary"]
    # Rejected, so it compensated nothing: another attempt may be started.
    again = undo_call(platform, OSCAR, grant.id, reason="the owner confirmed now")
    assert again.task_id != attempt.task_id


def test_what_cannot_be_undone_is_refused_with_the_reason(demo: Engine) -> None:
    registry = installed_registry()
    platform = platform_for(demo, registry)
    refund = registry.tool("issue_refund").spec
    assert "cannot be recalled" in refund.not_undoable_because
    submit_task(platform, OLGA, "it-access", GRANT)
    submit_task(
        platform,
        OLGA,
        "it-access",
        {"intent": "password_reset", "employee_id": "E-2002", "message": "Locked out."},
    )
    drive(demo, registry)
    [lookup, *_] = _calls(demo, "lookup_employee")
    [reset] = _calls(demo, "reset_password")
    [grant] = _calls(demo, "grant_access")
    assert lookup.id and reset.id and grant.id
    with pytest.raises(InvalidInput, match="only read data; there is nothing to undo"):
        undo_call(platform, OSCAR, lookup.id, reason="x")
    with pytest.raises(InvalidInput) as no_undo:
        undo_call(platform, OSCAR, reset.id, reason="x")
    assert str(no_undo.value).startswith("reset_password cannot be undone: a reset link")
    with pytest.raises(InvalidInput, match="an undo needs a reason"):
        undo_call(platform, OSCAR, grant.id, reason="  ")
    with pytest.raises(Forbidden, match="may not undo call"):
        undo_call(platform, Actor.of("erin", ["engineer"]), grant.id, reason="x")
    with pytest.raises(InvalidInput, match="reserved for undo tasks"):
        submit_task(platform, OLGA, "it-access", {**GRANT, "steward_undo": {"tool": "x"}})
    with read_session(demo) as session:
        assert session.exec(select(Compensation)).all() == []


def test_a_refund_names_why_it_cannot_be_undone(demo: Engine) -> None:
    registry = installed_registry()
    platform = platform_for(demo, registry)
    submit_task(
        platform,
        OLGA,
        "support",
        {
            "intent": "refund",
            "customer_id": "C-1001",
            "order_id": "O-5001",
            "amount": 45.0,
            "ticket_id": "T-9001",
            "reason": "arrived damaged",
            "message": "My mug set arrived broken. Please refund $45.",
        },
    )
    drive(demo, registry)
    refunds = [c for c in _calls(demo, "issue_refund") if c.status is ToolCallStatus.SUCCEEDED]
    assert refunds, "the demo's small refund is allowed and executes"
    with pytest.raises(InvalidInput) as refused_undo:
        undo_call(platform, OSCAR, refunds[0].id or 0, reason="customer changed their mind")
    message = str(refused_undo.value)
    assert message.startswith("issue_refund cannot be undone: a refund is money already paid")
    assert message.endswith("contact the customer instead.")


def test_derived_arguments_come_from_the_call_and_its_result() -> None:
    spec = ToolSpec(
        "grant",
        "grant",
        {"type": "object"},
        compensating_tool="revoke",
        compensation_args={"id": "result.grant_id", "who": "args.employee_id + '!'"},
    )
    args: dict[str, Any] = {"employee_id": "E-1"}
    assert compensating_args(spec, 7, args, {"grant_id": 3}) == {"id": 3, "who": "E-1!"}
    with pytest.raises(InvalidInput, match="argument 'id' of revoke cannot be derived from call 7"):
        compensating_args(spec, 7, args, {})
    plain = ToolSpec("grant", "grant", {"type": "object"}, compensating_tool="revoke")
    assert compensating_args(plain, 7, args, None) == args
