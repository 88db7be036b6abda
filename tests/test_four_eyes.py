"""Four-eyes: a rule asking for ``approvals: 2`` lets its call through only after two distinct
people approved the same arguments, never the submitter; the call still executes exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.actors import Actor
from agent.demo.seed import seed_demo
from agent.errors import DecisionConflict, Forbidden, InvalidInput, VersionSpecError
from agent.evals.service import run_evaluation
from agent.evals.suites import create_suite
from agent.versions.document import parse_version
from storage.engine import read_session
from storage.enums import EvalRunStatus, ReviewStatus, RunStatus
from storage.models import Review, ReviewDecision, Run, ToolCall
from tests.support.runtime import (
    OPERATOR,
    SHOP_POLICY,
    Effects,
    drive,
    install_agent,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)

OSCAR = Actor.of("oscar", ["operator"])
OTTO = Actor.of("otto", ["operator"])


def _four_eyes_policy(approvals: int = 2) -> dict[str, Any]:
    rules = [
        {**rule, "approvals": approvals} if rule["id"] == "pay-medium" else rule
        for rule in SHOP_POLICY["rules"]
    ]
    return {**SHOP_POLICY, "rules": rules}


def _script(amount: float) -> list[dict[str, Any]]:
    return [
        {
            "reasoning": f"refund {amount}",
            "calls": [{"tool": "pay", "args": {"order_id": "O1", "amount": amount}}],
        },
        {"reasoning": "done", "final": {"resolution": "refunded"}},
    ]


def _parked(engine: Engine, amount: float = 300) -> tuple[Effects, Any, int]:
    """A shop run (submitted by olga) parked on the four-eyes review of one payment."""
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(engine, "shop", scripted_version(_script(amount), policy=_four_eyes_policy()))
    submit(engine, "shop", {"order_id": "O1"})
    assert drive(engine, registry) == [RunStatus.WAITING_REVIEW]
    with read_session(engine) as session:
        review = session.exec(select(Review)).one()
    assert review.approvals_required == 2
    assert review.id is not None
    return effects, registry, review.id


def _review(engine: Engine, review_id: int) -> Review:
    with read_session(engine) as session:
        review = session.get(Review, review_id)
    assert review is not None
    return review


def _payments(engine: Engine) -> list[ToolCall]:
    with read_session(engine) as session:
        return list(session.exec(select(ToolCall).where(col(ToolCall.tool) == "pay")).all())


def test_one_approval_waits_the_second_persons_executes_once(engine: Engine) -> None:
    effects, registry, review_id = _parked(engine)
    platform = platform_for(engine, registry)

    first = reviews.approve(platform, OSCAR, review_id)
    assert first.status is ReviewStatus.PENDING and first.waiting_for_more
    assert first.approved_by == ("oscar",) and first.approvals_required == 2
    assert not first.run_resumes
    assert first.note is not None and "approved by oscar (1 of 2)" in first.note
    assert drive(engine, registry) == []  # nothing is claimable: the call still waits
    assert _payments(engine) == []

    with pytest.raises(
        InvalidInput, match=r"oscar already approved review \d+; it needs 1 more approval"
    ):
        reviews.approve(platform, OSCAR, review_id)

    second = reviews.approve(platform, OTTO, review_id)
    assert second.status is ReviewStatus.APPROVED and second.run_resumes
    assert second.approved_by == ("oscar", "otto")
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert sum(effects.by_key.values()) == 1
    [payment] = _payments(engine)
    assert payment.args == {"order_id": "O1", "amount": 300}
    review = _review(engine, review_id)
    assert (review.decided_by, review.approved_by) == ("otto", ["oscar", "otto"])
    with pytest.raises(DecisionConflict, match="already approved by otto"):
        reviews.approve(platform, Actor.of("olive", ["operator"]), review_id)


def test_the_submitter_may_not_approve_the_calls_of_their_own_task(engine: Engine) -> None:
    _, registry, review_id = _parked(engine)
    platform = platform_for(engine, registry)
    with pytest.raises(Forbidden) as refused:
        reviews.approve(platform, OPERATOR, review_id)
    message = str(refused.value)
    assert message.startswith("olga submitted task ")
    assert "needs 2 people other than the submitter" in message and "\n" not in message
    with pytest.raises(Forbidden, match="olga submitted task"):
        reviews.edit_and_approve(platform, OPERATOR, review_id, {"order_id": "O1", "amount": 200})
    review = _review(engine, review_id)
    assert (review.status, review.approved_by, review.row_version) == (
        ReviewStatus.PENDING,
        [],
        1,
    )
    # The submitter may still say no: a rejection needs one person.
    rejected = reviews.reject(platform, OPERATOR, review_id, "customer withdrew the request")
    assert rejected.status is ReviewStatus.REJECTED


def test_an_edit_restarts_the_count_and_its_arguments_are_what_executes(engine: Engine) -> None:
    effects, registry, review_id = _parked(engine)
    platform = platform_for(engine, registry)
    reviews.approve(platform, OSCAR, review_id)
    edited = reviews.edit_and_approve(
        platform, OTTO, review_id, {"order_id": "O1", "amount": 250}, reason="partial refund"
    )
    assert edited.status is ReviewStatus.PENDING
    assert edited.approved_by == ("otto",)  # oscar approved $300, not $250
    # Oscar approving again now counts: he approves the edited arguments.
    final = reviews.approve(platform, OSCAR, review_id)
    assert final.status is ReviewStatus.EDITED and final.run_resumes
    assert final.approved_by == ("otto", "oscar")
    with read_session(engine) as session:
        decisions = session.exec(
            select(ReviewDecision).where(col(ReviewDecision.review_id) == review_id)
        ).all()
    assert [(d.actor, d.decision.value) for d in decisions] == [
        ("oscar", "approve"),
        ("otto", "edit"),
        ("oscar", "approve"),
    ]
    assert decisions[-1].args == {"order_id": "O1", "amount": 250}
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    [payment] = _payments(engine)
    assert payment.args == {"order_id": "O1", "amount": 250}
    assert sum(effects.by_key.values()) == 1


def test_a_rule_that_is_not_an_escalation_cannot_ask_for_approvals() -> None:
    policy = _four_eyes_policy()
    rules = [
        {**rule, "approvals": 2} if rule["id"] == "pay-large" else rule for rule in policy["rules"]
    ]
    document = scripted_version(_script(1), policy={**policy, "rules": rules})
    with pytest.raises(VersionSpecError, match="rule 'pay-large' asks for 2 approvals"):
        parse_version(yaml.safe_dump(document))


def test_concurrent_approvers_count_once_each_and_the_call_executes_once(engine: Engine) -> None:
    """Six approvers race over the same 60 four-eyes reviews: exactly two approvals count on
    each, every other one gets a conflict, and each approved call executes exactly once."""
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(engine, "shop", scripted_version(_script(300), policy=_four_eyes_policy()))
    for i in range(60):
        submit(engine, "shop", {"order_id": f"O{i}"})
    assert drive(engine, registry, max_claims=200).count(RunStatus.WAITING_REVIEW) == 60
    with read_session(engine) as session:
        review_ids = [r.id or 0 for r in session.exec(select(Review).order_by(col(Review.id)))]
    platform = platform_for(engine, registry)

    def approve_all(n: int) -> tuple[int, int]:
        actor = Actor.of(f"op{n}", ["operator"])
        counted = lost = 0
        for review_id in review_ids:
            try:
                reviews.approve(platform, actor, review_id)
                counted += 1
            except DecisionConflict:
                lost += 1
        return counted, lost

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(approve_all, range(6)))
    assert sum(c for c, _ in results) == 2 * 60
    assert sum(lost for _, lost in results) == 4 * 60
    with read_session(engine) as session:
        decided = session.exec(select(Review)).all()
        counts = {
            r.id: len(
                session.exec(
                    select(ReviewDecision).where(col(ReviewDecision.review_id) == r.id)
                ).all()
            )
            for r in decided
        }
    assert all(r.status is ReviewStatus.APPROVED for r in decided)
    assert all(len(set(r.approved_by)) == 2 == len(r.approved_by) for r in decided)
    assert set(counts.values()) == {2}
    statuses = drive(engine, registry, max_claims=200)
    assert statuses.count(RunStatus.SUCCEEDED) == 60
    assert len(effects.by_key) == 60
    assert all(count == 1 for count in effects.by_key.values())
    with read_session(engine) as session:
        assert all(r.status is RunStatus.SUCCEEDED for r in session.exec(select(Run)).all())


FOUR_EYES_SUITE = """
description: Admin access to payroll needs two approvals.
fixtures: demo
cases:
  - name: payroll-admin-two-approvals
    input: {intent: access_request, employee_id: E-2014, app_id: payroll, access_level: admin,
            justification: payroll run, message: "I need admin in payroll."}
    reviewer:
      - {tool: grant_access, decision: approve, reason: the payroll lead confirmed}
      - {tool: grant_access, decision: approve, reason: checked the ticket}
    expect:
      status: succeeded
      side_effects:
        must:
          - {table: it_access_grants, where: {employee_id: E-2014, app_id: payroll, access_level: admin}, count: 1}
"""  # noqa: E501


def test_an_evaluation_answers_a_four_eyes_review_with_two_approvers(engine: Engine) -> None:
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    erin = Actor.of("erin", ["engineer"])
    create_suite(platform, erin, "it-access", "four-eyes", FOUR_EYES_SUITE)
    (evaluation,) = run_evaluation(platform, erin, "it-access", suite="four-eyes")
    assert evaluation.status is EvalRunStatus.PASSED, evaluation.summary
    with read_session(engine) as session:
        review = session.exec(
            select(Review).where(col(Review.rule_id) == "grant-payroll-admin-four-eyes")
        ).one()
    assert review.approved_by == ["evaluator", "evaluator-2"]
