"""``steward demo | submit | worker | runs | reviews | kpis`` through real processes.

The acceptance check of the runtime issue lives here: ``steward demo seed && steward worker
--drain`` leaves a database in which every policy effect, every review kind and at least five
error classes occur.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL, Engine
from sqlmodel import col, select

from storage import migrate
from storage.engine import create_engine, read_session
from storage.enums import ErrorClass, ReviewKind, RunStatus, StepKind
from storage.models import Review, Run, Step, SupportRefund
from tests.support.cli import ok, refused, steward


@pytest.fixture
def drained(db_url: URL) -> Iterator[Engine]:
    """The demo seeded and every sample task processed, by the real commands."""
    engine = create_engine(db_url)
    ok(steward(engine, "db", "upgrade"))
    seeded = json.loads(
        ok(steward(engine, "demo", "seed", "--no-evaluations", "--no-history", "--json"))
    )
    assert seeded["tasks"] >= 50
    drained = ok(steward(engine, "worker", "--drain", timeout=300))
    assert "drained" in drained
    yield engine
    engine.dispose()


def test_demo_covers_every_effect_review_kind_and_five_error_classes(drained: Engine) -> None:
    with read_session(drained) as session:
        effects = {
            step.attributes.get("effect")
            for step in session.exec(
                select(Step).where(col(Step.kind) == StepKind.APPLY_GUARDRAIL)
            ).all()
        }
        kinds = set(session.exec(select(Review.kind)).all())
        classes = set(
            session.exec(select(Step.error_class).where(col(Step.error_class).is_not(None))).all()
        )
        statuses = set(session.exec(select(Run.status)).all())
    assert {"allow", "escalate", "deny"} <= effects
    assert kinds == set(ReviewKind)
    assert len(classes) >= 5, classes
    # The team password reset makes three resets in one run against a 2/minute limit.
    assert ErrorClass.RATE_LIMITED in classes
    assert {RunStatus.SUCCEEDED, RunStatus.WAITING_REVIEW, RunStatus.ESCALATED} <= statuses
    assert all(status is not RunStatus.READY for status in statuses)


def test_decide_through_the_cli_then_the_run_completes(drained: Engine) -> None:
    queue = json.loads(ok(steward(drained, "reviews", "list", "--as", "olga", "--json")))
    assert queue["total"] == len(queue["items"]) < queue["limit"]
    refund = next(
        item
        for item in queue["items"]
        if item["kind"] == "escalation" and item["tool"] == "issue_refund"
    )
    # Roles are checked by the service, whatever the command line allows.
    refused(
        steward(drained, "reviews", "approve", str(refund["id"]), "--as", "erin"),
        "may not",
    )
    refused(
        steward(drained, "reviews", "reject", str(refund["id"]), "--as", "olga"),
        "reason",
    )
    refused(
        steward(
            drained, "reviews", "approve", str(refund["id"]), "--as", "olga", "--args", "{oops"
        ),
        "JSON",
    )
    decided = json.loads(
        ok(
            steward(
                drained,
                *("reviews", "approve", str(refund["id"]), "--as", "olga", "--json"),
                *("--reason", "checked the order"),
            )
        )
    )
    assert decided == {
        "review_id": refund["id"],
        "status": "approved",
        "decided_by": "olga",
        "run_id": refund["run_id"],
        "run_resumes": True,
        "note": None,  # the policy still lets the approved refund through
        "approved_by": [],  # no four-eyes rule: one approval decides
        "approvals_required": 1,
    }
    refused(
        steward(drained, "reviews", "reject", str(refund["id"]), "--as", "oscar", "--reason", "no"),
        "olga",
    )
    ok(steward(drained, "worker", "--drain", timeout=300))

    shown = json.loads(
        ok(steward(drained, "runs", "show", str(refund["run_id"]), "--as", "erin", "--json"))
    )
    assert shown["run"]["status"] == "succeeded"
    kinds = [step["kind"] for step in shown["steps"]]
    assert "human_approval" in kinds and kinds[-1] in ("final_output", "invoke_agent")
    with read_session(drained) as session:
        paid = session.exec(
            select(SupportRefund).where(col(SupportRefund.run_id) == refund["run_id"])
        ).all()
    assert [r.amount_cents for r in paid] == [round(refund["args"]["amount"] * 100)]

    listed = json.loads(
        ok(steward(drained, "runs", "list", "--status", "succeeded", "--as", "mona", "--json"))
    )
    assert refund["run_id"] in {row["id"] for row in listed["items"]}
    kpis = json.loads(ok(steward(drained, "kpis", "--agent", "support", "--as", "mona", "--json")))
    assert kpis["runs"]["total"] > 20
    assert sum(kpis["reviews"]["decisions"].values()) == 1


def test_submit_validates_input_and_agent(db_url: URL) -> None:
    engine = create_engine(db_url)
    migrate.upgrade(engine)
    try:
        ok(steward(engine, "demo", "seed", "--no-tasks"))
        refused(steward(engine, "submit", "support", "--input", "[1, 2]", "--as", "olga"), "JSON")
        refused(
            steward(engine, "submit", "nobody", "--input", '{"a": 1}', "--as", "olga"), "nobody"
        )
        refused(
            steward(engine, "submit", "support", "--input", '{"a": 1}', "--as", "ada"), "may not"
        )
        queued = json.loads(
            ok(
                steward(
                    engine,
                    *("submit", "support", "--as", "olga", "--json", "--input"),
                    '{"intent": "order_status", "customer_id": "C-1012", "order_id": "O-5015"}',
                )
            )
        )
        assert queued["status"] == "queued"
        with read_session(engine) as session:
            assert session.exec(select(Run)).all() == []
    finally:
        engine.dispose()


def test_commands_on_an_unmigrated_database_say_what_to_run(db_url: URL) -> None:
    for command in (("runs", "list"), ("reviews", "list"), ("kpis",), ("demo", "seed")):
        refused(steward(db_url, *command), "run `steward db upgrade` first")
