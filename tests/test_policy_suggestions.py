"""Policy suggestions: a rule people approve nearly always gets a proposed higher auto-allow
bound, checked by replay to auto-allow nothing a person rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import Actor
from agent.demo.seed import seed_demo
from agent.errors import Forbidden
from agent.release.suggest import policy_suggestions
from agent.reviews import decide
from agent.tasks import submit_task
from agent.versions.document import parse_version
from storage.engine import read_session
from storage.enums import DecisionKind, ReviewStatus
from storage.models import Review
from tests.support.cli import ok, refused, steward
from tests.support.runtime import drive, platform_for

ERIN = Actor.of("erin", ["engineer"])
OLGA = Actor.of("olga", ["operator"])
# Two refunds each on three large orders, all between $100 and $200: v1 escalates every one.
APPROVED = (
    ("C-1006", "O-5006", 120.0, "T-9006"),
    ("C-1006", "O-5006", 130.0, "T-9006"),
    ("C-1007", "O-5007", 150.0, "T-9007"),
    ("C-1007", "O-5007", 160.0, "T-9007"),
    ("C-1008", "O-5008", 170.0, "T-9008"),
    ("C-1008", "O-5008", 190.0, "T-9008"),
)


def _refunds(
    engine: Engine, tasks: tuple[tuple[str, str, float, str], ...], kind: DecisionKind
) -> None:
    platform = platform_for(engine)
    for customer, order, amount, ticket in tasks:
        submit_task(
            platform,
            OLGA,
            "support",
            {
                "intent": "refund",
                "customer_id": customer,
                "order_id": order,
                "amount": amount,
                "ticket_id": ticket,
                "reason": "partial",
                "message": f"A partial refund of ${amount:.0f} would do.",
            },
        )
    drive(engine, max_claims=200)
    with read_session(engine) as session:
        pending = session.exec(
            select(Review).where(col(Review.status) == ReviewStatus.PENDING)
        ).all()
    assert len(pending) == len(tasks)
    for review in pending:
        decide(platform, OLGA, review.id or 0, kind, reason="checked")
    drive(engine, max_claims=200)


@pytest.fixture
def approvals(migrated: Engine) -> Engine:
    seed_demo(platform_for(migrated), with_tasks=False)
    _refunds(migrated, APPROVED, DecisionKind.APPROVE)
    return migrated


def test_a_rule_people_always_approve_gets_a_higher_bound(approvals: Engine) -> None:
    platform = platform_for(approvals)
    (suggestion,) = policy_suggestions(platform, ERIN, "support", min_decisions=5)
    assert (suggestion.rule_id, suggestion.decisions, suggestion.approved) == (
        "refund-needs-approval",
        6,
        6,
    )
    assert (suggestion.argument, suggestion.bound_from, suggestion.bound_to) == (
        "amount",
        100.0,
        190.0,
    )
    assert suggestion.reviews_saved == 6
    assert suggestion.rejections_allowed == 0
    assert suggestion.proposal == (
        "let issue_refund through without review up to args.amount = 190 (now 100)"
    )
    # The proposal is a whole version document, ready for `steward versions create`.
    assert suggestion.candidate_yaml is not None
    rules = {r.id: r.when for r in parse_version(suggestion.candidate_yaml).spec.policy.rules}
    assert rules["refund-small"] == "args.amount <= 190.0"
    assert rules["refund-needs-approval"].startswith("args.amount > 190.0 &&")
    # Too few decisions for the default threshold of 20: nothing is suggested.
    assert policy_suggestions(platform, ERIN, "support") == ()
    with pytest.raises(Forbidden):
        policy_suggestions(platform, OLGA, "support")


def test_a_rejection_bounds_the_suggestion_below_it(approvals: Engine) -> None:
    _refunds(approvals, (("C-1004", "O-5004", 180.0, "T-9004"),), DecisionKind.REJECT)
    platform = platform_for(approvals)
    # 6 of 7 approved: under 95%, no suggestion.
    assert policy_suggestions(platform, ERIN, "support", min_decisions=5) == ()
    (suggestion,) = policy_suggestions(platform, ERIN, "support", min_decisions=5, min_share=0.8)
    # The bound stops below the rejected $180, and replay confirms nothing rejected is allowed.
    assert (suggestion.bound_to, suggestion.reviews_saved, suggestion.rejections_allowed) == (
        170.0,
        5,
        0,
    )


def test_the_cli_suggests_and_writes_the_proposal(approvals: Engine, tmp_path: Path) -> None:
    out = tmp_path / "proposal.yaml"
    said = ok(
        steward(
            approvals,
            "policy",
            "suggest",
            "support",
            "--min-decisions",
            "5",
            "--out",
            str(out),
            "--as",
            "erin",
        )
    )
    assert "refund-needs-approval (issue_refund): approved 6 of 6 (100%)." in said
    assert "saves 6 reviews" in said
    assert "args.amount <= 190.0" in out.read_text(encoding="utf-8")
    listed = json.loads(
        ok(steward(approvals, "policy", "suggest", "support", "--json", "--as", "mona"))
    )
    assert listed == []  # under the default 20 decisions
    refused(
        steward(approvals, "policy", "suggest", "support", "--min-share", "0.2", "--as", "erin"),
        "--min-share",
    )
