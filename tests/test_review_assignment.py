"""Assignment: an operator takes a review, others see who holds it and cannot take it until the
hold lapses; "next" takes the most urgent review nobody holds that the operator may decide."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.actors import Actor
from agent.errors import ConfigurationError, DecisionConflict, Forbidden, InvalidInput
from agent.reads.queue import open_reviews
from agent.settings import check_settings
from storage.engine import read_session
from storage.enums import RunStatus
from storage.models import AuditEvent, Review
from storage.types import utcnow
from tests.support.runtime import (
    MANAGER,
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


def _queue_of(engine: Engine, count: int, *, four_eyes: bool = False) -> list[int]:
    """``count`` parked payment reviews, oldest (most urgent) first; tasks by olga."""
    policy: dict[str, Any] = SHOP_POLICY
    if four_eyes:
        policy = {
            **SHOP_POLICY,
            "rules": [
                {**r, "approvals": 2} if r["id"] == "pay-medium" else r
                for r in SHOP_POLICY["rules"]
            ],
        }
    script = [
        {
            "reasoning": "refund",
            "calls": [{"tool": "pay", "args": {"order_id": "O1", "amount": 300}}],
        },
        {"reasoning": "done", "final": {"resolution": "refunded"}},
    ]
    registry = shop_registry(Effects())
    install_agent(engine, "shop", scripted_version(script, policy=policy))
    for _ in range(count):
        submit(engine, "shop", {"order_id": "O1"})
        assert drive(engine, registry) == [RunStatus.WAITING_REVIEW]
    with read_session(engine) as session:
        return [r.id or 0 for r in session.exec(select(Review).order_by(col(Review.id)))]


def _review(engine: Engine, review_id: int) -> Review:
    with read_session(engine) as session:
        found = session.get(Review, review_id)
    assert found is not None
    return found


def test_a_taken_review_is_the_takers_until_the_hold_lapses(engine: Engine) -> None:
    [review_id] = _queue_of(engine, 1)
    platform = platform_for(engine)
    now = utcnow()
    hold = reviews.take_review(platform, OSCAR, review_id, now=now)
    assert (hold.holder, hold.until - hold.since) == ("oscar", timedelta(minutes=15))
    [item] = open_reviews(platform, OPERATOR).items
    assert (item.assigned_to, item.assigned_at) == ("oscar", now)

    later = now + timedelta(minutes=4)
    with pytest.raises(DecisionConflict) as taken:
        reviews.take_review(platform, OTTO, review_id, now=later)
    assert str(taken.value).startswith(f"review {review_id} is taken by oscar for 4 min")
    with pytest.raises(InvalidInput, match=f"otto does not hold review {review_id}"):
        reviews.release_review(platform, OTTO, review_id)
    # Taking it again renews the taker's own hold.
    assert reviews.take_review(platform, OSCAR, review_id, now=later).since == later

    lapsed = later + timedelta(minutes=16)
    assert reviews.holder_of("oscar", later, now=lapsed) is None
    assert reviews.take_review(platform, OTTO, review_id, now=lapsed).holder == "otto"
    reviews.release_review(platform, OTTO, review_id)
    assert _review(engine, review_id).assigned_to is None
    with read_session(engine) as session:
        actions = session.exec(
            select(AuditEvent.action)
            .where(col(AuditEvent.target_type) == "review")
            .where(col(AuditEvent.target_id) == review_id)
        ).all()
    assert list(actions) == ["review.take", "review.take", "review.take", "review.release"]


def test_next_takes_the_most_urgent_review_nobody_holds(engine: Engine) -> None:
    first, second, third = _queue_of(engine, 3)
    platform = platform_for(engine)
    assert [i.id for i in open_reviews(platform, OPERATOR).items] == [first, second, third]
    reviews.take_review(platform, OTTO, first)
    hold = reviews.next_review(platform, OSCAR)
    assert hold is not None and hold.review_id == second
    again = reviews.next_review(platform, OPERATOR)
    assert again is not None and again.review_id == third
    assert reviews.next_review(platform, Actor.of("olive", ["operator"])) is None
    # A decided review leaves the pool with its hold.
    reviews.approve(platform, OSCAR, second)
    assert [i.id for i in open_reviews(platform, OPERATOR).items] == [first, third]


def test_next_skips_four_eyes_calls_the_operator_may_not_approve(engine: Engine) -> None:
    first, second = _queue_of(engine, 2, four_eyes=True)
    platform = platform_for(engine)
    # olga submitted both tasks: four-eyes keeps her off their approvals.
    assert reviews.next_review(platform, OPERATOR) is None
    reviews.approve(platform, OSCAR, first)
    assert _review(engine, first).assigned_to is None  # back in the pool for a second person
    hold = reviews.next_review(platform, OSCAR)
    assert hold is not None and hold.review_id == second  # he already approved the first
    other = reviews.next_review(platform, OTTO)
    assert other is not None and other.review_id == first


def test_only_operators_take_give_back_or_take_the_next_review(engine: Engine) -> None:
    [review_id] = _queue_of(engine, 1)
    platform = platform_for(engine)
    for actor in (MANAGER, Actor.of("erin", ["engineer"]), Actor.of("ada", ["admin"])):
        with pytest.raises(Forbidden, match="needs the role operator"):
            reviews.take_review(platform, actor, review_id)
        with pytest.raises(Forbidden):
            reviews.release_review(platform, actor, review_id)
        with pytest.raises(Forbidden):
            reviews.next_review(platform, actor)
    assert _review(engine, review_id).assigned_to is None


def test_the_hold_timeout_is_a_setting_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_settings({}).review_hold_minutes == 15.0
    assert check_settings({"STEWARD_REVIEW_HOLD_MINUTES": "5"}).review_hold_minutes == 5.0
    with pytest.raises(ConfigurationError, match="STEWARD_REVIEW_HOLD_MINUTES must be a number"):
        check_settings({"STEWARD_REVIEW_HOLD_MINUTES": "soon"})
    monkeypatch.setenv("STEWARD_REVIEW_HOLD_MINUTES", "2")
    now = utcnow()
    assert reviews.holder_of("oscar", now - timedelta(minutes=1), now=now) == "oscar"
    assert reviews.holder_of("oscar", now - timedelta(minutes=3), now=now) is None
