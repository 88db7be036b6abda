"""Nothing the policy did not allow is executed; each refusal carries the right error class."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.errors import DecisionConflict, Forbidden, InvalidInput
from storage.engine import read_session
from storage.enums import ErrorClass, ReviewKind, ReviewStatus, RunStatus, StepKind
from storage.models import Review, Run, Step, ToolCall
from tests.support.runtime import (
    MANAGER,
    OPERATOR,
    Effects,
    drive,
    install_agent,
    park_payment,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)

BAD_CALLS = [
    {"reasoning": "export the crm", "calls": [{"tool": "crm_export", "args": {}}]},
    {"reasoning": "unknown tool", "calls": [{"tool": "format_disk", "args": {}}]},
    {
        "reasoning": "bad args",
        "calls": [{"tool": "pay", "args": {"order_id": "O1", "amount": "lots"}}],
    },
    {"reasoning": "missing args", "calls": [{"tool": "pay", "args": {"order_id": "O1"}}]},
    {"reasoning": "wipe", "calls": [{"tool": "wipe", "args": {"customer": "C1"}}]},
    {
        "reasoning": "spam",
        "calls": [
            {"tool": "notify", "args": {"to": "a"}},
            {"tool": "notify", "args": {"to": "b"}},
            {"tool": "notify", "args": {"to": "c"}},
        ],
    },
    {
        "reasoning": "over authority",
        "calls": [
            {"tool": "pay", "args": {"order_id": "O1", "amount": 700}},
            {"tool": "pay", "args": {"order_id": "O2", "amount": 5000}},
        ],
    },
    {"reasoning": "give up", "final": {"resolution": "escalated"}},
]


def _observations(engine: Engine) -> dict[str, ErrorClass | None]:
    with read_session(engine) as session:
        steps = session.exec(
            select(Step).where(col(Step.kind) == StepKind.OBSERVATION).order_by(col(Step.seq))
        ).all()
    return {s.call_id or "": s.error_class for s in steps}


def test_bad_proposals_are_denied_or_parked_with_their_error_class(engine: Engine) -> None:
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(engine, "shop", scripted_version(BAD_CALLS))
    submit(engine, "shop", {"order_id": "O1"})
    assert drive(engine, registry) == [RunStatus.WAITING_REVIEW]

    observed = _observations(engine)
    assert observed["t0c0"] is ErrorClass.OUT_OF_SCOPE  # crm is not a data source
    assert observed["t1c0"] is ErrorClass.OUT_OF_SCOPE  # not in the tool set
    assert observed["t2c0"] is ErrorClass.INVALID_ARGUMENTS
    assert observed["t3c0"] is ErrorClass.INVALID_ARGUMENTS
    assert observed["t4c0"] is ErrorClass.POLICY_DENIED  # absolute: no review
    assert observed["t5c0"] is None and observed["t5c1"] is None  # within 2/minute
    assert observed["t5c2"] is ErrorClass.RATE_LIMITED
    with read_session(engine) as session:
        parked = {r.call_id: r for r in session.exec(select(Review)).all()}
        executed = {row.tool for row in session.exec(select(ToolCall)).all()}
    assert (parked["t6c0"].kind, parked["t6c0"].status) == (
        ReviewKind.ESCALATION,
        ReviewStatus.PENDING,
    )
    assert (parked["t6c1"].kind, parked["t6c1"].status) == (ReviewKind.BLOCK, ReviewStatus.BLOCKED)
    assert parked["t6c1"].override_roles == ["manager"]
    assert executed == {"notify"}  # only the two allowed notifications ran
    assert sum(effects.by_key.values()) == 2


def test_block_can_only_be_overridden_by_named_roles_with_a_reason(engine: Engine) -> None:
    parked = park_payment(engine, 1200, order_id="O2")
    effects, registry = parked.effects, parked.registry
    block = parked.review
    assert block.id is not None
    with pytest.raises(InvalidInput, match="only be overridden"):
        reviews.approve(platform_for(engine), OPERATOR, block.id)
    with pytest.raises(Forbidden, match="olga"):
        reviews.override(platform_for(engine), OPERATOR, block.id, "customer is a VIP")
    with pytest.raises(InvalidInput, match="needs a reason"):
        reviews.override(platform_for(engine), MANAGER, block.id, "  ")
    assert effects.by_key == {}
    reviews.override(platform_for(engine), MANAGER, block.id, "approved by finance, ticket FIN-7")
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert list(effects.payments.values()) == [1200.0]


def test_edit_is_revalidated_and_a_deny_rule_still_applies(engine: Engine) -> None:
    parked = park_payment(engine, 300)
    effects, registry = parked.effects, parked.registry
    review = parked.review
    review_id = review.id or 0
    with pytest.raises(InvalidInput, match="not valid JSON"):
        reviews.edit_and_approve(platform_for(engine), OPERATOR, review_id, "{amount: 20")
    with pytest.raises(InvalidInput, match="do not fit pay"):
        reviews.edit_and_approve(
            platform_for(engine), OPERATOR, review_id, {"order_id": "O1", "amount": -5}
        )
    with pytest.raises(InvalidInput, match="denied by rule pay-large"):
        reviews.edit_and_approve(
            platform_for(engine), OPERATOR, review_id, {"order_id": "O1", "amount": 9000}
        )
    with read_session(engine) as session:
        assert session.get(Review, review_id).status is ReviewStatus.PENDING  # type: ignore[union-attr]
    reviews.edit_and_approve(
        platform_for(engine),
        OPERATOR,
        review_id,
        '{"order_id": "O1", "amount": 250}',
        reason="partial refund agreed",
    )
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert list(effects.payments.values()) == [250.0]


def test_second_decision_conflicts_naming_who_decided(engine: Engine) -> None:
    review_id = park_payment(engine, 300).review.id or 0
    reviews.approve(platform_for(engine), OPERATOR, review_id)
    with pytest.raises(DecisionConflict, match="already approved by olga") as info:
        reviews.reject(
            platform_for(engine), OPERATOR.__class__.of("oscar", ["operator"]), review_id, "no"
        )
    assert info.value.decided_by == "olga"


def test_concurrent_deciders_execute_each_approved_call_exactly_once(engine: Engine) -> None:
    """Eight threads race to decide the same 200 reviews: 200 executions, 1400 conflicts."""
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(
        engine,
        "shop",
        scripted_version(
            [
                {
                    "reasoning": "refund",
                    "calls": [{"tool": "pay", "args": {"order_id": "O1", "amount": 300}}],
                },
                {"reasoning": "done", "final": {"resolution": "refunded"}},
            ]
        ),
    )
    for i in range(200):
        submit(engine, "shop", {"order_id": f"O{i}"})
    assert drive(engine, registry, max_claims=400).count(RunStatus.WAITING_REVIEW) == 200
    with read_session(engine) as session:
        review_ids = [r.id or 0 for r in session.exec(select(Review).order_by(col(Review.id)))]
    assert len(review_ids) == 200

    def decide_all(n: int) -> tuple[int, int]:
        actor = OPERATOR.__class__.of(f"op{n}", ["operator"])
        won = lost = 0
        for review_id in review_ids:
            try:
                if n % 2:
                    reviews.approve(platform_for(engine), actor, review_id)
                else:
                    reviews.edit_and_approve(
                        platform_for(engine), actor, review_id, {"order_id": "O1", "amount": 200}
                    )
                won += 1
            except DecisionConflict:
                lost += 1
        return won, lost

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(decide_all, range(8)))
    assert sum(w for w, _ in results) == 200
    assert sum(lost for _, lost in results) == 7 * 200
    statuses = drive(engine, registry, max_claims=400)
    assert statuses.count(RunStatus.SUCCEEDED) == 200
    assert sum(effects.by_key.values()) == 200
    assert all(count == 1 for count in effects.by_key.values())
    with read_session(engine) as session:
        assert all(r.status is RunStatus.SUCCEEDED for r in session.exec(select(Run)).all())
