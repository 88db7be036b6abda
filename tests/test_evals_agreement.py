"""Reviewer agreement: people's past decisions become cases, and a version is scored by how
many of them it agrees with when it runs the same inputs in a sandbox."""

from __future__ import annotations

import json
from textwrap import dedent

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import Actor
from agent.demo import version_yaml
from agent.demo.seed import seed_demo
from agent.errors import Forbidden, InvalidInput, SuiteSpecError
from agent.evals.agreement import (
    AGREEMENT_SUITE,
    agreement_by_version,
    measure_agreement,
    refresh_agreement_suite,
)
from agent.evals.service import evaluation_results
from agent.evals.suites import create_suite
from agent.reviews import decide
from agent.tasks import submit_task
from agent.versions import create_version
from storage.engine import read_session
from storage.enums import DecisionKind, EvalRunStatus, ReviewStatus
from storage.models import EvalCase, EvalSuite, Review, Run, SupportRefund
from tests.support.cli import ok, refused, steward
from tests.support.runtime import drive, platform_for

ERIN = Actor.of("erin", ["engineer"])
OLGA = Actor.of("olga", ["operator"])
MONA = Actor.of("mona", ["manager"])

SANDBOX_SUITE = dedent(
    """
    fixtures: demo
    cases:
      - name: small-refund
        tags: [normal]
        input: {intent: refund, customer_id: C-1001, order_id: O-5001, amount: 45.0,
                ticket_id: T-9001, reason: damaged, message: Please refund $45.}
        expect: {status: succeeded}
    """
)


def _refund(customer: str, order: str, amount: float, ticket: str) -> dict[str, object]:
    return {
        "intent": "refund",
        "customer_id": customer,
        "order_id": order,
        "amount": amount,
        "ticket_id": ticket,
        "reason": "damaged",
        "message": f"Please refund ${amount:.0f}.",
    }


@pytest.fixture
def reviewed(migrated: Engine) -> Engine:
    """The demo with three production refunds escalated and decided by an operator: the
    monitor's $1,000 approved, the desk's $250 rejected, the chair's $349 edited down to $300."""
    engine = migrated
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    create_suite(platform, ERIN, "support", "sandbox", SANDBOX_SUITE)
    for task in (
        _refund("C-1004", "O-5004", 349.0, "T-9004"),
        _refund("C-1005", "O-5005", 250.0, "T-9005"),
        _refund("C-1006", "O-5006", 1000.0, "T-9006"),
    ):
        submit_task(platform, OLGA, "support", task)
    drive(engine)
    with read_session(engine) as session:
        reviews = {
            r.args["order_id"] if r.args else "": r
            for r in session.exec(select(Review).where(col(Review.tool) == "issue_refund")).all()
        }
    assert set(reviews) == {"O-5004", "O-5005", "O-5006"}
    decide(platform, OLGA, reviews["O-5006"].id or 0, DecisionKind.APPROVE)
    decide(platform, OLGA, reviews["O-5005"].id or 0, DecisionKind.REJECT, reason="bent leg ok")
    edited = {**(reviews["O-5004"].args or {}), "amount": 300.0}
    decide(platform, OLGA, reviews["O-5004"].id or 0, DecisionKind.EDIT, args=edited)
    drive(engine)
    return engine


def test_past_decisions_become_cases_of_a_managed_suite(reviewed: Engine) -> None:
    platform = platform_for(reviewed)
    suite = refresh_agreement_suite(platform, ERIN, "support")
    assert (suite.name, suite.cases, suite.required) == (AGREEMENT_SUITE, 3, False)
    with read_session(reviewed) as session:
        row = session.exec(select(EvalSuite).where(col(EvalSuite.name) == AGREEMENT_SUITE)).one()
    cases = {c["input"]["order_id"]: c for c in yaml.safe_load(row.source_yaml)["cases"]}
    assert cases["O-5006"]["reviewer"] == [{"tool": "issue_refund", "decision": "approve"}]
    assert cases["O-5005"]["reviewer"][0]["decision"] == "reject"
    assert cases["O-5005"]["expect"]["governance"]["not_allowed"] == [{"tool": "issue_refund"}]
    assert cases["O-5004"]["reviewer"][0]["args"]["amount"] == 300.0
    assert row.document["fixtures"] == "demo"
    # Refreshing with nothing new decided keeps the same content (and so the same hash).
    assert refresh_agreement_suite(platform, ERIN, "support").content_hash == suite.content_hash


def test_the_version_people_worked_with_agrees_and_a_looser_one_does_not(
    reviewed: Engine,
) -> None:
    platform = platform_for(reviewed)
    with read_session(reviewed) as session:
        production_runs = len(session.exec(select(Run)).all())
        refunds_before = sorted(r.order_id for r in session.exec(select(SupportRefund)).all())
    active = measure_agreement(platform, ERIN, "support")
    assert (active.status, active.passed, active.failed) == (EvalRunStatus.PASSED, 3, 0)

    # A version that lets refunds up to $500 through without a person: it still carries out
    # what was approved, but pays what was rejected and the amount that was edited.
    looser = (
        version_yaml("support-v1")
        .replace("when: args.amount <= 100.0", "when: args.amount <= 500.0")
        .replace("when: args.amount > 100.0 &&", "when: args.amount > 500.0 &&")
    )
    number = create_version(platform, ERIN, "support", looser, note="auto-approve to $500").number
    measured = measure_agreement(platform, ERIN, "support", version=number)
    assert (measured.passed, measured.failed) == (1, 2)
    _, results = evaluation_results(platform, MONA, measured.id)
    orders = _orders_by_case(reviewed)
    failures = {orders[r.case]: " ".join(r.failures) for r in results}
    assert failures["O-5006"] == ""
    for order in ("O-5005", "O-5004"):
        assert "the gate allowed issue_refund" in failures[order]
        assert "without a person" in failures[order]

    scores = agreement_by_version(platform, MONA, "support")
    assert scores[number].score == pytest.approx(1 / 3)
    assert scores[active.version].score == 1.0
    with read_session(reviewed) as session:
        # Production is untouched: no refund paid by the measurements, no review left open.
        assert sorted(r.order_id for r in session.exec(select(SupportRefund)).all()) == (
            refunds_before
        )
        assert (
            len(session.exec(select(Run).where(col(Run.eval_run_id).is_(None))).all())
            == production_runs
        )
        open_production = session.exec(
            select(Review)
            .join(Run, col(Run.id) == col(Review.run_id))
            .where(col(Run.eval_run_id).is_(None))
            .where(col(Review.status).in_(ReviewStatus.open_statuses()))
        ).all()
    assert open_production == []


def _orders_by_case(engine: Engine) -> dict[str, str]:
    with read_session(engine) as session:
        cases = session.exec(select(EvalCase)).all()
    return {c.name: str(c.input.get("order_id")) for c in cases}


def test_agreement_needs_an_engineer_decisions_and_a_sandbox(engine: Engine) -> None:
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    with pytest.raises(Forbidden):
        refresh_agreement_suite(platform, OLGA, "support")
    with pytest.raises(InvalidInput, match="fixture"):
        refresh_agreement_suite(platform, ERIN, "support")
    create_suite(platform, ERIN, "support", "sandbox", SANDBOX_SUITE)
    with pytest.raises(InvalidInput, match="nobody has decided"):
        refresh_agreement_suite(platform, ERIN, "support")
    with pytest.raises(InvalidInput, match="last is 1 to"):
        refresh_agreement_suite(platform, ERIN, "support", last=0)


def test_not_allowed_matchers_are_checked_when_the_suite_is_stored(engine: Engine) -> None:
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    bad = SANDBOX_SUITE.replace(
        "expect: {status: succeeded}",
        "expect:\n      governance:\n        not_allowed:\n"
        "          - {tool: issue_refund, args: {order_id: {pattern: '(unclosed'}}}",
    )
    with pytest.raises(SuiteSpecError) as raised:
        create_suite(platform, ERIN, "support", "bad", bad)
    assert raised.value.line == 11
    assert "not_allowed" in str(raised.value)


def test_the_cli_measures_and_reads_agreement(reviewed: Engine) -> None:
    said = ok(steward(reviewed, "evals", "agreement", "support", "--as", "erin"))
    assert "support v1 agrees with 3 of 3 reviewed runs (100%)" in said
    scores = json.loads(
        ok(steward(reviewed, "evals", "agreement", "support", "--scores", "--json", "--as", "mona"))
    )
    assert {n: (s["agreed"], s["cases"], s["score"]) for n, s in scores.items()} == {
        "1": (3, 3, 1.0)
    }
    refused(steward(reviewed, "evals", "agreement", "support", "--as", "olga"), "olga")
    refused(
        steward(reviewed, "evals", "agreement", "support", "--last", "0", "--as", "erin"),
        "--last",
    )
