"""The operators' read services and bulk decisions, called directly on the seeded demo.

Role rules: operators and managers read the queue, everyone reads runs, only operators decide
(managers override where a rule names them), and every decision in a bulk is audited alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.actors import Actor
from agent.errors import Forbidden, InvalidInput, NotFound
from agent.plugins import installed_registry
from agent.reads.queue import (
    open_reviews,
    preview_edit,
    queue_choices,
    review_context,
    waiting_count,
)
from agent.reads.runs import find_runs, run_choices, run_details
from agent.reads.tasks import STALE_AFTER_S, submission_agents, work_overview
from agent.tasks import submit_task
from agent.versions.service import activate_version
from storage.engine import read_session, write_session
from storage.enums import DecisionKind, ErrorClass, ReviewStatus, RunStatus, StepKind, TaskStatus
from storage.models import AuditEvent, Review, ReviewDecision, Run, Worker
from storage.queries.queue import QueueFilter
from storage.queries.runs import RunFilter, count_by_status
from storage.types import utcnow
from tests.support.console import engine_for
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
OSCAR = Actor.of("oscar", ["operator"])
MONA = Actor.of("mona", ["manager"])
ERIN = Actor.of("erin", ["engineer"])
ADA = Actor.of("ada", ["admin"])


@pytest.fixture
def demo(demo_url: str) -> Iterator[Engine]:
    engine = engine_for(demo_url)
    yield engine
    engine.dispose()


def open_ids(engine: Engine, *, rule: str | None = None) -> list[int]:
    """Open reviews (of ``rule``) oldest first: the demo's exact ids depend on timing."""
    query = select(col(Review.id)).where(col(Review.status).in_(["pending", "blocked"]))
    if rule is not None:
        query = query.where(col(Review.rule_id) == rule)
    with read_session(engine) as session:
        return [i for i in session.exec(query.order_by(col(Review.id))).all() if i is not None]


def _review(engine: Engine, review_id: int) -> Review:
    with read_session(engine) as session:
        review = session.get(Review, review_id)
    assert review is not None
    return review


def _audited(engine: Engine, action: str) -> list[str | None]:
    with read_session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(col(AuditEvent.action) == action).order_by(col(AuditEvent.id))
        ).all()
    return [e.target_id for e in events]


def test_queue_is_most_urgent_first_and_filters(demo: Engine) -> None:
    everything = open_ids(demo)
    snapshot = open_reviews(platform_for(demo), OLGA)
    keys = [(i.sla_due_at, -i.risk, i.id) for i in snapshot.items]
    assert keys == sorted(keys)
    assert snapshot.open_count == len(snapshot.items) == len(everything) >= 10
    assert sorted(i.id for i in snapshot.items) == everything
    assert snapshot.overdue_count == 0
    assert {i.status for i in snapshot.items} == {"pending", "blocked"}

    later = open_reviews(platform_for(demo), OLGA, now=utcnow() + timedelta(hours=3))
    assert later.overdue_count == len(everything)

    refunds = open_reviews(
        platform_for(demo),
        OLGA,
        QueueFilter(agent="support", kind="escalation", tool="issue_refund"),
    )
    assert sorted(i.id for i in refunds.items) == open_ids(demo, rule="refund-needs-approval")
    assert refunds.open_count == len(refunds.items) > 0
    blocks = open_reviews(platform_for(demo), OLGA, QueueFilter(rule_id="no-production-db"))
    assert {i.kind for i in blocks.items} == {"block"}
    assert len(blocks.items) == len(open_ids(demo, rule="no-production-db")) > 0
    assert (
        open_reviews(platform_for(demo), OLGA, QueueFilter(agent="support", version=2)).items == ()
    )

    page = open_reviews(platform_for(demo), OLGA, limit=5)
    assert len(page.items) == 5
    assert page.truncated

    choices = queue_choices(platform_for(demo), MONA)
    assert choices.agents == ("it-access", "support")
    assert "refund-needs-approval" in choices.rules
    assert {"grant_access", "issue_refund"} <= set(choices.tools)


@pytest.mark.parametrize("actor", [ERIN, ADA])
def test_only_operators_and_managers_read_the_queue(demo: Engine, actor: Actor) -> None:
    with pytest.raises(Forbidden, match="read the review queue"):
        open_reviews(platform_for(demo), actor)
    with pytest.raises(Forbidden):
        review_context(platform_for(demo), actor, 1)
    assert open_reviews(platform_for(demo), MONA).open_count == len(open_ids(demo))
    # The navigation's count beside the queue: for those who work it, and no one else.
    assert waiting_count(platform_for(demo), actor) is None
    assert waiting_count(platform_for(demo), OLGA) == len(open_ids(demo)) >= 10


def test_review_context_has_the_call_rule_trace_and_schema(demo: Engine) -> None:
    refund = open_ids(demo, rule="refund-needs-approval")[0]
    block = open_ids(demo, rule="refund-over-limit")[0]
    context = review_context(platform_for(demo), OLGA, refund)
    review = context.review
    assert (review.tool, review.rule_id, review.agent, review.version) == (
        "issue_refund",
        "refund-needs-approval",
        "support",
        1,
    )
    assert context.task_input["intent"] == "refund"
    assert context.rule is not None
    assert context.rule["effect"] == "escalate"
    last = context.trace[-1]
    assert last.kind is StepKind.APPLY_GUARDRAIL
    assert last.attributes["rule_id"] == "refund-needs-approval"
    assert context.trace[0].kind is StepKind.INVOKE_AGENT
    assert context.args_schema is not None
    assert "amount" in context.args_schema["properties"]
    assert context.permitted == {DecisionKind.APPROVE, DecisionKind.EDIT, DecisionKind.REJECT}

    # Managers read everything but decide only the blocks whose rule names them.
    assert review_context(platform_for(demo), MONA, refund).permitted == frozenset()
    assert review_context(platform_for(demo), MONA, block).permitted == {
        DecisionKind.OVERRIDE,
        DecisionKind.REJECT,
    }
    assert review_context(platform_for(demo), OLGA, block).permitted == {DecisionKind.REJECT}
    with pytest.raises(NotFound, match="review 9999 does not exist"):
        review_context(platform_for(demo), OLGA, 9999)


def test_preview_checks_json_and_schema_and_lists_changes(demo: Engine) -> None:
    context = review_context(
        platform_for(demo), OLGA, open_ids(demo, rule="refund-needs-approval")[0]
    )
    args = context.review.args
    assert args is not None
    broken = preview_edit(context, '{"amount": ')
    assert broken.args is None
    assert broken.problems == ("the edit is not valid JSON: Expecting value at line 1 column 12.",)
    assert not broken.submittable

    wrong = preview_edit(context, json.dumps({**args, "amount": -5}))
    assert wrong.problems == ("args.amount: -5 is less than or equal to the minimum of 0",)
    assert not wrong.submittable

    same = preview_edit(context, json.dumps({**args, "amount": int(args["amount"])}))
    assert same.changes == ()
    assert not same.submittable

    smaller = {k: v for k, v in args.items() if k != "reason"} | {"amount": 100.5}
    edit = preview_edit(context, json.dumps(smaller))
    assert edit.submittable
    assert [(c.path, c.change, c.before, c.after) for c in edit.changes] == [
        ("amount", "changed", args["amount"], 100.5),
        ("reason", "removed", args["reason"], None),
    ]


def test_bulk_decides_each_review_alone_and_reports_conflicts(demo: Engine) -> None:
    first, second = open_ids(demo, rule="refund-needs-approval")[:2]
    block = open_ids(demo, rule="refund-over-limit")[0]
    reviews.approve(platform_for(demo), OSCAR, second, reason="checked by phone")
    outcomes = reviews.decide_many(
        platform_for(demo),
        OLGA,
        DecisionKind.APPROVE,
        {first: 1, second: 1, block: 1},
        reason="batch",
    )
    by_id = {o.review_id: o for o in outcomes}
    assert [o.review_id for o in outcomes] == [first, second, block]
    assert by_id[first].decided
    assert by_id[first].run_resumes
    assert not by_id[second].decided
    assert "already approved by oscar" in by_id[second].message
    assert not by_id[block].decided
    assert "can only be overridden" in by_id[block].message

    assert _review(demo, first).decided_by == "olga"
    assert _review(demo, second).decided_by == "oscar"
    assert _review(demo, block).status is ReviewStatus.BLOCKED
    assert _audited(demo, "review.approve") == [str(second), str(first)]
    with read_session(demo) as session:
        decisions = session.exec(
            select(ReviewDecision).where(col(ReviewDecision.review_id) == second)
        ).all()
    assert [d.actor for d in decisions] == ["oscar"]


def test_bulk_reject_needs_a_reason_and_changes_nothing_without_one(demo: Engine) -> None:
    refund = open_ids(demo, rule="refund-needs-approval")[0]
    block = open_ids(demo, rule="refund-over-limit")[0]
    with pytest.raises(InvalidInput, match="a rejection needs a reason"):
        reviews.decide_many(
            platform_for(demo), OLGA, DecisionKind.REJECT, [refund, block], reason="  "
        )
    with pytest.raises(InvalidInput, match="only approve and reject"):
        reviews.decide_many(platform_for(demo), MONA, DecisionKind.OVERRIDE, [block], reason="fine")
    assert _review(demo, refund).status is ReviewStatus.PENDING
    assert _review(demo, block).status is ReviewStatus.BLOCKED
    assert _audited(demo, "review.reject") == []

    outcomes = reviews.decide_many(
        platform_for(demo), OLGA, DecisionKind.REJECT, [refund, block], reason="duplicate"
    )
    assert all(o.decided for o in outcomes)
    assert _review(demo, block).status is ReviewStatus.REJECTED
    assert _audited(demo, "review.reject") == [str(refund), str(block)]


def test_an_engineer_cannot_decide_a_review(demo: Engine) -> None:
    refund = open_ids(demo, rule="refund-needs-approval")[0]
    with pytest.raises(Forbidden, match=rf"erin .* may not approve review {refund}"):
        reviews.approve(platform_for(demo), ERIN, refund)
    outcomes = reviews.decide_many(platform_for(demo), ERIN, DecisionKind.APPROVE, [refund])
    assert not outcomes[0].decided
    assert "needs the role operator" in outcomes[0].message
    assert _review(demo, refund).status is ReviewStatus.PENDING
    review = review_context(platform_for(demo), OLGA, refund).review
    assert reviews.permitted_decisions(ERIN, review) == frozenset()


def test_run_list_filters_counts_and_pages(demo: Engine) -> None:
    with read_session(demo) as session:
        by_status = count_by_status(session=session)
    total = sum(by_status.values())
    everything = find_runs(platform_for(demo), ERIN, limit=20)
    assert everything.total == total > 40
    assert everything.pages == -(-total // 20)
    created = [r.created_at for r in everything.items]
    assert created == sorted(created, reverse=True)

    last = find_runs(platform_for(demo), ERIN, offset=everything.last_offset, limit=20)
    assert last.number == everything.pages
    assert len(last.items) == total - 20 * (everything.pages - 1)
    assert not {r.id for r in last.items} & {r.id for r in everything.items}
    assert (everything.next_offset, last.next_offset) == (20, None)
    # Walking the pages by next_offset visits every run once.
    seen: list[int] = []
    offset: int | None = 0
    while offset is not None:
        page = find_runs(platform_for(demo), ERIN, offset=offset, limit=20)
        seen.extend(r.id for r in page.items)
        offset = page.next_offset
    assert len(seen) == len(set(seen)) == total
    beyond = find_runs(platform_for(demo), ERIN, offset=total, limit=20)
    assert (beyond.items, beyond.total, beyond.next_offset) == ((), total, None)
    for window in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
        with pytest.raises(InvalidInput, match="runs, not"):
            find_runs(platform_for(demo), ERIN, **window)

    waiting = find_runs(platform_for(demo), ADA, RunFilter(status=RunStatus.WAITING_REVIEW))
    assert waiting.total == by_status["waiting_review"]
    assert {r.status for r in waiting.items} == {"waiting_review"}
    support = find_runs(platform_for(demo), MONA, RunFilter(agent="support", version=1))
    assert support.total > 0
    assert {(r.agent, r.version) for r in support.items} == {("support", 1)}
    assert find_runs(platform_for(demo), MONA, RunFilter(agent="support", version=2)).total == 0
    assert (
        find_runs(platform_for(demo), OLGA, RunFilter(since=utcnow() + timedelta(minutes=1))).total
        == 0
    )
    assert (
        find_runs(platform_for(demo), OLGA, RunFilter(until=utcnow() - timedelta(days=1))).total
        == 0
    )

    with write_session(demo) as session:
        run = session.get(Run, 1)
        assert run is not None
        run.error_class = ErrorClass.INTERNAL_ERROR
        session.add(run)
    timed_out = find_runs(
        platform_for(demo), OLGA, RunFilter(error_class=ErrorClass.INTERNAL_ERROR)
    )
    assert [r.id for r in timed_out.items] == [1]
    assert run_choices(platform_for(demo), ERIN).versions == {
        "it-access": (1, 2),
        "support": (1, 2),
    }


def test_a_run_shows_the_version_it_was_pinned_to(demo: Engine) -> None:
    activate_version(platform_for(demo), ERIN, "support", 2, reason="try v2")
    trace = run_details(platform_for(demo), ADA, 1)
    assert trace.run.status is RunStatus.SUCCEEDED
    assert (trace.version.agent, trace.version.number) == ("support", 1)
    assert "version 1" in trace.version.source_yaml
    assert "refund-needs-approval" in {r["id"] for r in trace.version.rules}
    assert [s.seq for s in trace.steps] == list(range(1, trace.run.step_count + 1))
    assert trace.steps[-1].kind is StepKind.FINAL_OUTPUT
    assert {t.tool for t in trace.tool_calls} >= {"lookup_order", "issue_refund"}
    with pytest.raises(NotFound, match="run 4242 does not exist"):
        run_details(platform_for(demo), ADA, 4242)


def test_approved_work_runs_and_the_trace_records_who_and_why(demo: Engine) -> None:
    refund = open_ids(demo, rule="refund-needs-approval")[0]
    decided = reviews.approve(platform_for(demo), OLGA, refund, reason="receipt checked")
    drive(demo, installed_registry())
    trace = run_details(platform_for(demo), OLGA, decided.run_id)
    assert trace.run.status is RunStatus.SUCCEEDED
    human = [s for s in trace.steps if s.kind is StepKind.HUMAN_APPROVAL]
    assert len(human) == 1
    assert human[0].output is not None
    assert human[0].output["decided_by"] == "olga"
    assert human[0].output["reason"] == "receipt checked"
    assert [(d.actor, d.decision) for d in trace.decisions] == [("olga", DecisionKind.APPROVE)]


def test_work_overview_shows_queued_tasks_and_worker_heartbeats(demo: Engine) -> None:
    assert submission_agents(platform_for(demo), OLGA) == ("it-access", "support")
    with pytest.raises(Forbidden, match="submit tasks"):
        submission_agents(platform_for(demo), ADA)
    task_id = submit_task(
        platform_for(demo), OLGA, "support", {"intent": "order_status", "order_id": "O-5001"}
    )
    now = utcnow()
    with write_session(demo) as session:
        session.add(Worker(id="w-fresh", hostname="h", pid=1, heartbeat_at=now))
        session.add(
            Worker(
                id="w-old",
                hostname="h",
                pid=2,
                heartbeat_at=now - timedelta(seconds=STALE_AFTER_S + 5),
            )
        )
    overview = work_overview(platform_for(demo), ADA, now=now)
    assert overview.items[0].task_id == task_id
    assert overview.items[0].status is TaskStatus.QUEUED
    assert overview.items[0].run_id is None
    parked = [i for i in overview.items if i.status is TaskStatus.WAITING_REVIEW]
    assert len(parked) == overview.counts[TaskStatus.WAITING_REVIEW] > 0
    assert all(i.run_status is RunStatus.WAITING_REVIEW for i in parked)
    assert overview.counts[TaskStatus.QUEUED] == 1
    assert [(w.worker.id, w.stale) for w in overview.workers] == [
        ("w-fresh", False),
        ("w-old", True),
    ]
    assert overview.alive


REFUND: list[dict[str, Any]] = [
    {"reasoning": "refund", "calls": [{"tool": "pay", "args": {"order_id": "O1", "amount": 300}}]},
    {"reasoning": "done", "final": {"resolution": "refunded"}},
]


def test_queue_runs_and_work_read_alike_on_each_database(engine: Engine) -> None:
    """The same reads on SQLite and PostgreSQL (NULL ordering, CASE sums, correlated runs)."""
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(engine, "shop", scripted_version(REFUND))
    for order in ("O1", "O2", "O3"):
        submit(engine, "shop", {"order_id": order})
    drive(engine, registry)

    snapshot = open_reviews(platform_for(engine), OLGA)
    assert snapshot.open_count == 3
    assert (
        open_reviews(platform_for(engine), OLGA, now=utcnow() + timedelta(hours=1)).overdue_count
        == 3
    )
    flt = QueueFilter(agent="shop", version=1, kind="escalation", rule_id="pay-medium", tool="pay")
    assert [i.id for i in open_reviews(platform_for(engine), MONA, flt).items] == [
        i.id for i in snapshot.items
    ]
    choices = queue_choices(platform_for(engine), OLGA)
    assert (choices.agents, choices.rules, choices.tools) == (("shop",), ("pay-medium",), ("pay",))

    first, second, third = (i.id for i in snapshot.items)
    context = review_context(platform_for(engine), OLGA, first)
    assert context.trace[-1].kind is StepKind.APPLY_GUARDRAIL
    assert context.args_schema is not None
    assert "amount" in context.args_schema["properties"]
    outcomes = reviews.decide_many(
        platform_for(engine),
        OLGA,
        DecisionKind.APPROVE,
        {i.id: i.row_version for i in snapshot.items[:2]},
        reason="ok",
    )
    assert [o.decided for o in outcomes] == [True, True]
    drive(engine, registry)
    assert sorted(effects.payments.values()) == [300.0, 300.0]

    done = find_runs(
        platform_for(engine), ERIN, RunFilter(agent="shop", version=1, status=RunStatus.SUCCEEDED)
    )
    assert done.total == 2
    trace = run_details(platform_for(engine), ERIN, done.items[0].id)
    assert [s.kind for s in trace.steps].count(StepKind.HUMAN_APPROVAL) == 1
    assert {r.id for r in trace.reviews} <= {first, second}
    overview = work_overview(platform_for(engine), MONA)
    assert overview.counts == {TaskStatus.SUCCEEDED: 2, TaskStatus.WAITING_REVIEW: 1}
    assert [(i.status, i.run_status) for i in overview.items] == [
        (TaskStatus.WAITING_REVIEW, RunStatus.WAITING_REVIEW)
    ]
    assert review_context(platform_for(engine), OLGA, third).review.is_open
