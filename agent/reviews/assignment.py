"""Assignment: an operator takes a review so that nobody else works it at the same time.

A hold is a compare-and-set on the review (free, already the taker's, or a hold older than the
timeout); it never changes what a decision binds, so taking a review does not invalidate what
another person has open. After ``STEWARD_REVIEW_HOLD_MINUTES`` (15 by default) a hold lapses
and the review is back in the pool, with no job needed: every read treats a lapsed hold as none.
"Next" takes the most urgent open review nobody holds that the operator may decide.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from agent.actors import DECIDE_ROLES, Actor, require
from agent.errors import ConfigurationError, DecisionConflict, InvalidInput, NotFound
from agent.platform import Platform
from agent.reviews.decide import quorum_of
from agent.reviews.permissions import permitted_decisions
from storage.audit import append_event
from storage.engine import write_session
from storage.enums import DecisionKind, ReviewStatus
from storage.models import Review
from storage.queries.queue import QueueFilter
from storage.types import utcnow

HOLD_VARIABLE = "STEWARD_REVIEW_HOLD_MINUTES"
DEFAULT_HOLD_MINUTES = 15.0
_NEXT_CANDIDATES = 50


def hold_minutes(environ: Mapping[str, str] | None = None) -> float:
    """How long a taken review stays with its taker: ``STEWARD_REVIEW_HOLD_MINUTES``.

    Raises:
        ConfigurationError: the variable is set to something other than a positive number.
    """
    raw = (os.environ if environ is None else environ).get(HOLD_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_HOLD_MINUTES
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not 0 < minutes <= 24 * 60:
        raise ConfigurationError(
            f"{HOLD_VARIABLE} must be a number of minutes above 0 and at most 1440, not {raw!r}."
        )
    return minutes


@dataclass(frozen=True)
class Hold:
    """Who holds a review, since when, and when it returns to the pool."""

    review_id: int
    holder: str
    since: datetime
    until: datetime


def holder_of(
    assigned_to: str | None, assigned_at: datetime | None, *, now: datetime
) -> str | None:
    """Who holds a review now: None when nobody took it or the hold lapsed."""
    if assigned_to is None or assigned_at is None:
        return None
    return assigned_to if assigned_at > now - timedelta(minutes=hold_minutes()) else None


def take_review(
    platform: Platform, actor: Actor, review_id: int, *, now: datetime | None = None
) -> Hold:
    """Take an open review to work on it; taking one you hold renews the hold.

    Raises:
        Forbidden: the actor is not an operator.
        NotFound: no such review.
        InvalidInput: it is already decided.
        DecisionConflict: someone else holds it (the message says who, and until when).
    """
    require(actor, DECIDE_ROLES, f"take review {review_id}")
    moment = now or utcnow()
    with write_session(platform.engine) as session:
        review = session.get(Review, review_id)
        if review is None:
            raise NotFound(f"review {review_id} does not exist.")
        if not review.status.is_open:
            raise InvalidInput(
                f"review {review_id} is already {review.status.value}; there is nothing to take."
            )
        if not _take(session, review_id, actor.name, moment):
            session.expire(review)
            current = session.get(Review, review_id)
            assert current is not None
            raise DecisionConflict(_taken_message(current, moment), decided_by=None, status="held")
        return _held(session, review_id, actor, moment)


def release_review(platform: Platform, actor: Actor, review_id: int) -> None:
    """Give back a review you hold, to the pool.

    Raises:
        Forbidden: the actor is not an operator.
        NotFound: no such review.
        InvalidInput: the actor does not hold it.
    """
    require(actor, DECIDE_ROLES, f"release review {review_id}")
    with write_session(platform.engine) as session:
        released = session.execute(
            sa.update(Review)
            .where(col(Review.id) == review_id)
            .where(col(Review.assigned_to) == actor.name)
            .values(assigned_to=None, assigned_at=None)
        ).rowcount  # type: ignore[attr-defined]
        if released != 1:
            if session.get(Review, review_id) is None:
                raise NotFound(f"review {review_id} does not exist.")
            raise InvalidInput(
                f"{actor.name} does not hold review {review_id}; nothing to give back."
            )
        append_event(
            session,
            actor=actor.name,
            action="review.release",
            target_type="review",
            target_id=review_id,
            payload={},
        )


def next_review(
    platform: Platform,
    actor: Actor,
    flt: QueueFilter | None = None,
    *,
    now: datetime | None = None,
) -> Hold | None:
    """Take the most urgent open review nobody holds that ``actor`` may decide (by role and by
    four-eyes: not a call of a task they submitted, not one they already approved), in the
    queue's order; None when there is none.

    Raises:
        Forbidden: the actor is not an operator.
    """
    require(actor, DECIDE_ROLES, "take the next review")
    moment = now or utcnow()
    with write_session(platform.engine) as session:
        candidates = session.exec(
            select(Review)
            .where(col(Review.status).in_(ReviewStatus.open_statuses()))
            .where(*(flt or QueueFilter()).conditions())
            .where(_free(moment))
            .order_by(
                col(Review.sla_due_at).asc().nulls_last(), col(Review.risk).desc(), col(Review.id)
            )
            .limit(_NEXT_CANDIDATES)
        ).all()
        for review in candidates:
            assert review.id is not None
            permitted = permitted_decisions(actor, review)
            if not permitted:
                continue
            quorum = quorum_of(session, review)
            if DecisionKind.APPROVE in permitted and quorum.refusal(
                actor.name, DecisionKind.APPROVE
            ):
                continue
            if _take(session, review.id, actor.name, moment):
                return _held(session, review.id, actor, moment)
    return None


def _free(moment: datetime) -> ColumnElement[bool]:
    """Nobody holds the review, or the hold lapsed."""
    lapsed = moment - timedelta(minutes=hold_minutes())
    return sa.or_(col(Review.assigned_to).is_(None), col(Review.assigned_at) <= lapsed)


def _take(session: Session, review_id: int, taker: str, moment: datetime) -> bool:
    """The compare-and-set of a hold: free, lapsed, or the taker's own."""
    taken = session.execute(
        sa.update(Review)
        .where(col(Review.id) == review_id)
        .where(col(Review.status).in_(ReviewStatus.open_statuses()))
        .where(sa.or_(_free(moment), col(Review.assigned_to) == taker))
        .values(assigned_to=taker, assigned_at=moment)
    ).rowcount  # type: ignore[attr-defined]
    return bool(taken == 1)


def _held(session: Session, review_id: int, actor: Actor, moment: datetime) -> Hold:
    append_event(
        session,
        actor=actor.name,
        action="review.take",
        target_type="review",
        target_id=review_id,
        payload={"hold_minutes": hold_minutes()},
    )
    return Hold(review_id, actor.name, moment, moment + timedelta(minutes=hold_minutes()))


def _taken_message(review: Review, moment: datetime) -> str:
    if not review.status.is_open:
        return f"review {review.id} was {review.status.value} meanwhile; there is nothing to take."
    since = review.assigned_at or moment
    minutes = max(int((moment - since).total_seconds() // 60), 0)
    until = since + timedelta(minutes=hold_minutes())
    return (
        f"review {review.id} is taken by {review.assigned_to} for {minutes} min; it returns "
        f"to the pool at {until:%H:%M} UTC unless they decide it first."
    )
