"""The review queue view: listing, filters, the review pane and every decision, in AppTest.

Each test drives widgets by key on its own copy of the seeded demo and asserts on what the
database holds afterwards. The demo's review ids depend on timing, so tests look them up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest

from agent import reviews
from agent.actors import Actor
from agent.evals.suites import create_suite
from agent.plugins import installed_registry
from agent.users import actor_for, add_user
from storage.engine import read_session, write_session
from storage.enums import ReviewStatus, RunStatus
from storage.models import AuditEvent, EvalSuite, Review, ReviewDecision, Run, SupportRefund
from storage.types import utcnow
from tests.support.console import engine_for, open_console
from tests.support.runtime import ENGINEER, drive, platform_for
from tests.test_cli_evals import SMALL


@pytest.fixture
def db(demo_url: str) -> Iterator[Engine]:
    engine = engine_for(demo_url)
    yield engine
    engine.dispose()


def open_ids(engine: Engine, rule: str) -> list[int]:
    with read_session(engine) as session:
        ids = session.exec(
            select(col(Review.id))
            .where(col(Review.rule_id) == rule)
            .where(col(Review.status).in_([ReviewStatus.PENDING, ReviewStatus.BLOCKED]))
            .order_by(col(Review.created_at))
        ).all()
    return [i for i in ids if i is not None]


def oldest_refund(engine: Engine) -> int:
    """The oldest pending refund: an escalation of issue_refund."""
    return open_ids(engine, "refund-needs-approval")[0]


def review(engine: Engine, review_id: int) -> Review:
    with read_session(engine) as session:
        row = session.get(Review, review_id)
    assert row is not None
    return row


def decisions(engine: Engine, review_id: int) -> list[ReviewDecision]:
    with read_session(engine) as session:
        return list(
            session.exec(
                select(ReviewDecision).where(col(ReviewDecision.review_id) == review_id)
            ).all()
        )


def frame(at: AppTest, first_column: str) -> pd.DataFrame:
    """The table whose first column is ``first_column`` (st.dataframe keeps no key in AppTest)."""
    tables = [df.value for df in at.dataframe]
    return next(t for t in tables if len(t.columns) and t.columns[0] == first_column)


def queue(monkeypatch: pytest.MonkeyPatch, url: str, user: str = "olga") -> AppTest:
    return open_console(monkeypatch, url, user=user, page="queue.py")


def open_review(at: AppTest, review_id: int) -> AppTest:
    at.selectbox(key="queue.open").set_value(review_id).run()
    assert not at.exception, at.exception
    assert at.session_state["queue.opened"] == review_id
    return at


def texts(elements: object) -> str:
    return " ".join(str(e.value) for e in elements)  # type: ignore[attr-defined]


def test_queue_lists_open_reviews_most_urgent_first_and_marks_overdue(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    late = open_ids(db, "refund-over-limit")[0]
    with write_session(db) as session:
        row = session.get(Review, late)
        assert row is not None
        row.sla_due_at = utcnow() - timedelta(minutes=5)
        session.add(row)
        open_count = session.execute(
            sa.select(sa.func.count())
            .select_from(Review)
            .where(col(Review.status).in_([ReviewStatus.PENDING, ReviewStatus.BLOCKED]))
        ).scalar_one()

    at = queue(monkeypatch, demo_url)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Open reviews"] == str(open_count)
    assert metrics["Overdue"] == "1"
    table = frame(at, "review")
    assert len(table) == open_count
    assert table.iloc[0]["review"] == late
    assert bool(table.iloc[0]["overdue"])
    assert table.iloc[0]["SLA"].startswith("overdue")
    assert not table.iloc[1:]["overdue"].any()
    assert table.iloc[1]["SLA"].endswith("left")


def test_filters_narrow_the_list(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = queue(monkeypatch, demo_url)
    at.selectbox(key="queue.filter.kind").set_value("block").run()
    assert not at.exception
    assert set(frame(at, "review")["kind"]) == {"block"}
    at.selectbox(key="queue.filter.rule").set_value("refund-over-limit").run()
    table = frame(at, "review")
    assert sorted(table["review"]) == open_ids(db, "refund-over-limit")
    at.selectbox(key="queue.filter.agent").set_value("it-access").run()
    assert not at.exception
    assert "Nothing is waiting for a decision." in texts(at.info)


def test_filters_live_in_the_address_so_a_view_can_be_shared(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = open_console(
        monkeypatch,
        demo_url,
        user="olga",
        query={"kind": "block", "rule": "refund-over-limit", "tool": "no-such-tool"},
    )
    assert shared.selectbox(key="queue.filter.kind").value == "block"
    assert shared.selectbox(key="queue.filter.rule").value == "refund-over-limit"
    assert shared.selectbox(key="queue.filter.tool").value is None  # unknown: ignored
    assert sorted(frame(shared, "review")["review"]) == open_ids(db, "refund-over-limit")
    assert "tool" not in shared.query_params
    # Changing a filter changes the address; clearing one removes it.
    shared.selectbox(key="queue.filter.agent").set_value("support").run()
    assert shared.query_params["agent"] == "support"
    shared.selectbox(key="queue.filter.rule").set_value(None).run()
    assert "rule" not in shared.query_params
    assert shared.query_params["kind"] == "block"


def test_operator_approves_the_oldest_refund_and_its_run_completes(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = oldest_refund(db)
    at = open_review(queue(monkeypatch, demo_url), refund)
    assert at.subheader[0].value == f"Review {refund}: escalation of issue_refund"
    assert "refund-needs-approval" in texts(at.markdown)
    trace = frame(at, "seq")
    assert trace.iloc[-1]["kind"] == "apply_guardrail"
    assert trace.iloc[-1]["rule"] == "refund-needs-approval"

    at.text_input(key=f"queue.reason.{refund}").input("receipt checked").run()
    at.button(key="queue.approve").click().run()
    assert not at.exception
    assert f"Review {refund} approved by olga; the run resumes." in texts(at.success)
    assert "Approved by olga" in texts(at.info)
    decided = review(db, refund)
    assert (decided.status, decided.decided_by) == (ReviewStatus.APPROVED, "olga")
    assert [(d.actor, d.reason) for d in decisions(db, refund)] == [("olga", "receipt checked")]

    drive(db, installed_registry())
    with read_session(db) as session:
        run = session.get(Run, decided.run_id)
    assert run is not None
    assert run.status is RunStatus.SUCCEEDED


def test_invalid_json_in_an_edit_is_refused_and_changes_nothing(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = oldest_refund(db)
    at = open_review(queue(monkeypatch, demo_url), refund)
    at.text_area(key=f"queue.edit.{refund}").input('{"amount": 120,').run()
    assert not at.exception
    assert "The edit is not valid JSON" in texts(at.error)
    assert at.button(key="queue.edit_approve").disabled

    at.text_area(key=f"queue.edit.{refund}").input('{"amount": -3}').run()
    errors = texts(at.error)
    assert "Args.amount: -3 is less than or equal to the minimum of 0." in errors
    assert "'customer_id' is a required property" in errors
    assert at.button(key="queue.edit_approve").disabled
    assert review(db, refund).status is ReviewStatus.PENDING
    assert decisions(db, refund) == []


def test_edit_and_approve_shows_the_difference_and_binds_the_new_arguments(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = oldest_refund(db)
    original = review(db, refund).args
    assert original is not None
    at = open_review(queue(monkeypatch, demo_url), refund)
    assert json.loads(at.text_area(key=f"queue.edit.{refund}").value) == original

    edited = {**original, "amount": 120.0}
    at.text_area(key=f"queue.edit.{refund}").input(json.dumps(edited)).run()
    diff = frame(at, "field")
    assert diff.to_dict("records") == [
        {
            "field": "amount",
            "change": "changed",
            "proposed": str(original["amount"]),
            "edited": "120.0",
        }
    ]
    at.text_input(key=f"queue.reason.{refund}").input("partial refund agreed").run()
    at.button(key="queue.edit_approve").click().run()
    assert not at.exception
    assert f"Review {refund} edited by olga" in texts(at.success)
    assert review(db, refund).status is ReviewStatus.EDITED
    [decision] = decisions(db, refund)
    assert decision.args == edited
    assert decision.reason == "partial refund agreed"

    drive(db, installed_registry())
    with read_session(db) as session:
        paid = session.exec(
            select(SupportRefund).where(col(SupportRefund.run_id) == review(db, refund).run_id)
        ).all()
    assert [p.amount_cents for p in paid] == [12000]


def test_an_edit_the_policy_denies_is_refused_with_the_rule(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = oldest_refund(db)
    original = review(db, refund).args
    assert original is not None
    at = open_review(queue(monkeypatch, demo_url), refund)
    at.text_area(key=f"queue.edit.{refund}").input(json.dumps({**original, "amount": 5000}))
    at.run()
    at.button(key="queue.edit_approve").click().run()
    assert not at.exception
    assert "denied by rule refund-over-limit" in texts(at.error)
    assert review(db, refund).status is ReviewStatus.PENDING
    assert decisions(db, refund) == []


def test_a_rejection_needs_a_reason(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = oldest_refund(db)
    at = open_review(queue(monkeypatch, demo_url), refund)
    at.button(key="queue.reject").click().run()
    assert not at.exception
    assert "A rejection needs a reason." in texts(at.error)
    assert review(db, refund).status is ReviewStatus.PENDING

    at.text_input(key=f"queue.reason.{refund}").input("customer withdrew the request").run()
    at.button(key="queue.reject").click().run()
    assert review(db, refund).status is ReviewStatus.REJECTED
    assert [d.reason for d in decisions(db, refund)] == ["customer withdrew the request"]


def test_only_the_roles_a_rule_names_may_override_a_block(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = open_ids(db, "refund-over-limit")[0]
    at = open_review(queue(monkeypatch, demo_url), block)
    keys = {b.key for b in at.button}
    assert "queue.override" not in keys
    assert "queue.approve" not in keys
    assert "Only manager may override rule refund-over-limit" in texts(at.caption)

    at = open_review(queue(monkeypatch, demo_url, user="mona"), block)
    at.button(key="queue.override").click().run()
    assert "An override needs a reason." in texts(at.error)
    assert review(db, block).status is ReviewStatus.BLOCKED
    at.text_input(key=f"queue.reason.{block}").input("long-standing customer, approved").run()
    at.button(key="queue.override").click().run()
    assert not at.exception
    overridden = review(db, block)
    assert (overridden.status, overridden.decided_by) == (ReviewStatus.OVERRIDDEN, "mona")

    # A manager reads escalations but does not decide them.
    at = open_review(at, oldest_refund(db))
    assert "queue.approve" not in {b.key for b in at.button}
    assert "You may read this review but not decide it" in texts(at.caption)


def test_when_another_operator_decided_first_the_view_says_who_and_changes_nothing(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = oldest_refund(db)
    at = open_review(queue(monkeypatch, demo_url), refund)
    reviews.approve(
        platform_for(db), Actor.of("oscar", ["operator"]), refund, reason="called the customer"
    )

    at.text_input(key=f"queue.reason.{refund}").input("looks wrong")
    at.button(key="queue.reject").click().run()
    assert not at.exception
    assert f"Review {refund} was already approved by oscar" in texts(at.warning)
    assert "nothing was changed" in texts(at.warning)
    assert "Approved by oscar" in texts(at.info)
    assert review(db, refund).decided_by == "oscar"
    assert [d.actor for d in decisions(db, refund)] == ["oscar"]


def test_bulk_approval_lists_each_review_then_decides_and_audits_each(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = open_ids(db, "refund-needs-approval")[:2]
    at = queue(monkeypatch, demo_url)
    at.multiselect(key="queue.bulk").set_value(chosen).run()
    at.button(key="queue.bulk_approve").click().run()
    assert not at.exception
    assert sorted(frame(at, "id")["id"]) == sorted(chosen)
    assert {review(db, i).status for i in chosen} == {ReviewStatus.PENDING}

    at.button(key="queue.bulk_confirm").click().run()
    assert not at.exception
    assert "2 of 2 reviews decided." in texts(at.success)
    assert {review(db, i).status for i in chosen} == {ReviewStatus.APPROVED}
    with read_session(db) as session:
        events = session.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "review.approve")
        ).all()
    assert sorted(int(e.target_id or 0) for e in events) == sorted(chosen)
    assert "queue.bulk_action" not in at.session_state
    assert at.multiselect(key="queue.bulk").value == []


def test_bulk_rejection_without_a_reason_changes_nothing(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = open_ids(db, "refund-needs-approval")[:2]
    at = queue(monkeypatch, demo_url)
    at.multiselect(key="queue.bulk").set_value(chosen).run()
    at.button(key="queue.bulk_reject").click().run()
    at.button(key="queue.bulk_confirm").click().run()
    assert not at.exception
    assert "A rejection needs a reason." in texts(at.error)
    assert {review(db, i).status for i in chosen} == {ReviewStatus.PENDING}

    at.text_input(key="queue.bulk_reason").input("duplicate requests").run()
    at.button(key="queue.bulk_confirm").click().run()
    assert {review(db, i).status for i in chosen} == {ReviewStatus.REJECTED}
    assert {d.reason for i in chosen for d in decisions(db, i)} == {"duplicate requests"}


def test_cancelling_a_bulk_decision_changes_nothing(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = open_ids(db, "refund-needs-approval")[:1]
    at = queue(monkeypatch, demo_url)
    at.multiselect(key="queue.bulk").set_value(chosen).run()
    at.button(key="queue.bulk_approve").click().run()
    at.button(key="queue.bulk_cancel").click().run()
    assert not at.exception
    assert "id" not in {df.value.columns[0] for df in at.dataframe}
    assert review(db, chosen[0]).status is ReviewStatus.PENDING


def test_an_engineer_operator_adds_a_decided_review_to_a_suite(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:

    platform = platform_for(db)
    create_suite(platform, ENGINEER, "support", "refunds", SMALL)
    add_user(
        platform, actor_for(platform, "ada"), "eve", ["operator", "engineer"], password="x" * 12
    )
    refund = oldest_refund(db)
    original = review(db, refund).args
    assert original is not None

    at = open_review(queue(monkeypatch, demo_url, user="eve"), refund)
    # Open: nothing decided yet, so nothing to add.
    assert not [b for b in at.button if b.key == "queue.add_case.submit"]
    edited = {**original, "amount": 120.0}
    at.text_area(key=f"queue.edit.{refund}").input(json.dumps(edited)).run()
    at.text_input(key=f"queue.reason.{refund}").input("partial refund agreed").run()
    at.button(key="queue.edit_approve").click().run()
    assert not at.exception, at.exception

    at.text_input(key="queue.add_case.name").input("chair-partial")
    at.button(key="queue.add_case.submit").click().run()
    assert not at.exception, at.exception
    assert "Added case chair-partial" in texts(at.success)
    with read_session(db) as session:
        suite = session.exec(select(EvalSuite).where(col(EvalSuite.name) == "refunds")).one()
    case = suite.document["cases"][-1]
    assert case["name"] == "chair-partial"
    assert case["reviewer"] == [
        {
            "tool": "issue_refund",
            "rule": "refund-needs-approval",
            "decision": "edit",
            "reason": "partial refund agreed",
            "args": edited,
        }
    ]
    assert case["expect"]["trajectory"] == {
        "match": "subset",
        "calls": [
            {"tool": "issue_refund", "args": {"amount": {"equals": 120.0, "tolerance": 0.01}}}
        ],
    }
    assert case["expect"]["governance"]["decisions"] == [
        {"tool": "issue_refund", "rule": "refund-needs-approval", "decision": "escalate"}
    ]


def test_a_click_on_a_row_opens_that_review_and_rows_read_in_money_and_risk(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = queue(monkeypatch, demo_url)
    table = frame(at, "review")
    refund = oldest_refund(db)
    row = int(table.index[table["review"] == refund][0])
    stored = review(db, refund)
    amount = float((stored.args or {})["amount"])
    assert table.iloc[row]["amount"] == f"${amount:,.2f}"
    assert table.iloc[row]["risk"] == f"changes data · {int(min(amount, 999)):,}" + (
        "+ at stake" if amount >= 999 else " at stake"
    )
    # Rows that move no money say so with a dash, not a zero.
    assert "-" in set(table["amount"])
    key = "queue.table"
    clicks = at.session_state[f"{key}.clicks"]
    at.session_state[f"{key}.{clicks}"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert at.subheader[0].value == f"Review {refund}: escalation of issue_refund"
    assert at.selectbox(key="queue.open").value == refund
    # The rule behind every listed review, its reason in full.
    assert any("refund-needs-approval" in m.value and stored.reason in m.value for m in at.markdown)


def test_bulk_decisions_are_offered_only_to_those_who_may_take_them(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A manager approves nothing, and rejects only the blocks whose rule names managers.
    manager = queue(monkeypatch, demo_url, user="mona")
    listed = frame(manager, "review")
    assert set(listed["kind"]) > {"block"}
    offered = manager.multiselect(key="queue.bulk").options
    assert offered and all(" · block · " in label for label in offered)
    buttons = {b.key for b in manager.button if (b.key or "").startswith("queue.bulk_")}
    assert buttons == {"queue.bulk_reject"}
    operator = queue(monkeypatch, demo_url, user="olga")
    assert [w.key for w in operator.multiselect] == ["queue.bulk"]
    assert {b.key for b in operator.button} >= {"queue.bulk_approve", "queue.bulk_reject"}


def test_the_evidence_a_reviewer_decides_on_leads_the_pane(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = oldest_refund(db)
    stored = review(db, refund)
    at = open_review(queue(monkeypatch, demo_url), refund)
    shown = [m.value for m in at.markdown]
    evidence = shown.index("**Evidence: the policy's decision**")
    # Above the call, the task and the trace: what the rule decided, on which facts, and what
    # the tools found (the fraud score among them).
    assert (
        evidence
        < shown.index("**Proposed call**")
        < shown.index("**Reasoning trace up to this point**")
    )
    text = " ".join(shown)
    assert f"rule `refund-needs-approval`: {stored.reason}" in text
    assert f"${float((stored.args or {})['amount']):,.2f}" in text
    assert "`refunds_today` = 0" in text
    assert any(m.startswith("`check_fraud_score` →") and '"score"' in m for m in shown)


def test_a_review_link_opens_that_review_and_the_address_names_the_open_one(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refund = oldest_refund(db)
    at = open_console(monkeypatch, demo_url, user="olga", query={"review": str(refund)})
    assert at.subheader[0].value == f"Review {refund}: escalation of issue_refund"
    assert at.query_params["review"] == str(refund)
