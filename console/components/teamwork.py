"""The review queue as a team works it: "next review", taking and giving back a review, and the
four-eyes count. Every action is a service call in ``agent.reviews``, which checks the role.
"""

from __future__ import annotations

from datetime import datetime

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from agent import reviews
from agent.errors import ServiceError
from agent.reads.queue import QueueFilter, ReviewContext
from console.components.data import forget_lists
from console.components.feedback import describe, flash
from console.resources import platform
from console.session import current_user
from storage.errors import StorageError

FLASH = "queue.flash"
OPENED = "queue.opened"
PICKER = "queue.open"


def holder_label(assigned_to: str | None, assigned_at: datetime | None, now: datetime) -> str:
    """'oscar · 4 min' for a review someone holds, '' for one in the pool."""
    holder = reviews.holder_of(assigned_to, assigned_at, now=now)
    if holder is None or assigned_at is None:
        return ""
    return f"{holder} · {max(int((now - assigned_at).total_seconds() // 60), 0)} min"


def approvals_label(required: int, approved_by: tuple[str, ...]) -> str:
    """'1 of 2: oscar' under a four-eyes rule, '' otherwise."""
    if required <= 1:
        return ""
    return f"{len(approved_by)} of {required}" + (
        f": {', '.join(approved_by)}" if approved_by else ""
    )


def next_button(flt: QueueFilter) -> None:
    """ "Next review": take the most urgent review nobody holds and open it."""
    st.button(
        "Next review",
        key="queue.next",
        icon=":material/skip_next:",
        help="Take the most urgent review nobody holds that you may decide, and open it.",
        on_click=_take_next,
        args=(flt,),
    )


def hold_panel(context: ReviewContext, now: datetime) -> None:
    """Who holds the review and the four-eyes count, with take and give-back buttons."""
    review = context.review
    quorum = context.quorum
    if quorum is not None and quorum.four_eyes:
        st.info(
            f"Four-eyes: rule {review.rule_id} needs {quorum.required} people to approve; "
            f"{quorum.describe(quorum.approved_by)}."
        )
    if context.approval_refusal:
        st.caption(context.approval_refusal)
    me = current_user()
    holder = context.holder
    if holder is not None:
        st.caption(f"Taken by {holder_label(review.assigned_to, review.assigned_at, now)}.")
    if me is None or not context.permitted:
        return
    if holder == me.name:
        st.button(
            "Give back to the pool",
            key="queue.release",
            icon=":material/undo:",
            on_click=_release,
            args=(review.id,),
        )
    elif holder is None:
        st.button(
            "Take this review",
            key="queue.take",
            icon=":material/back_hand:",
            on_click=_take,
            args=(review.id,),
        )


def _take_next(flt: QueueFilter) -> None:
    actor = current_user()
    if actor is None:
        flash(FLASH, "error", "your session ended; sign in again.")
        return
    try:
        hold = reviews.next_review(platform(), actor, flt)
    except (ServiceError, StorageError, SQLAlchemyError) as exc:
        flash(FLASH, "error", describe(exc))
        return
    forget_lists()
    if hold is None:
        flash(FLASH, "info", "no review that nobody holds is waiting for you.")
        return
    st.session_state[OPENED] = hold.review_id
    st.session_state[PICKER] = hold.review_id
    flash(
        FLASH,
        "success",
        f"review {hold.review_id} is yours until {hold.until:%H:%M} UTC.",
    )


def _take(review_id: int) -> None:
    actor = current_user()
    if actor is None:
        flash(FLASH, "error", "your session ended; sign in again.")
        return
    try:
        hold = reviews.take_review(platform(), actor, review_id)
    except (ServiceError, StorageError, SQLAlchemyError) as exc:
        flash(FLASH, "warning", describe(exc))
        forget_lists()
        return
    forget_lists()
    flash(FLASH, "success", f"review {review_id} is yours until {hold.until:%H:%M} UTC.")


def _release(review_id: int) -> None:
    actor = current_user()
    if actor is None:
        flash(FLASH, "error", "your session ended; sign in again.")
        return
    try:
        reviews.release_review(platform(), actor, review_id)
    except (ServiceError, StorageError, SQLAlchemyError) as exc:
        flash(FLASH, "error", describe(exc))
        return
    forget_lists()
    flash(FLASH, "success", f"review {review_id} is back in the pool.")
