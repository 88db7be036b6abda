"""Bulk approve or reject: every selected review listed in a dialog before anything happens,
then each one decided and audited on its own.

The pending bulk action lives in session state (plain data), not in the button that asked for
it, so the dialog reopens on every full rerun until it is confirmed, cancelled or dismissed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from agent.actors import Actor
from agent.errors import ServiceError
from agent.reads.queue import QueueItem
from agent.reviews import decide_many
from agent.reviews.permissions import permitted_decisions
from console.components.data import forget_lists
from console.components.feedback import describe, sentence
from console.components.formatting import compact
from console.resources import platform
from storage.enums import DecisionKind, ReviewKind
from storage.errors import StorageError

ACTION = "queue.bulk_action"
OUTCOMES = "queue.bulk_outcomes"
REASON = "queue.bulk_reason"


BULK_KINDS = frozenset({DecisionKind.APPROVE, DecisionKind.REJECT})


@dataclass(frozen=True)
class _Listed:
    """A queue row as the permission rules read a review."""

    id: int
    kind: ReviewKind
    rule_id: str | None
    override_roles: tuple[str, ...]


def offered(actor: Actor, items: Sequence[QueueItem]) -> dict[DecisionKind, frozenset[int]]:
    """For each bulk decision the actor may take on at least one listed review, the ids of
    the reviews it applies to (``agent.reviews.permissions`` decides; nothing is re-ruled
    here)."""
    allowed: dict[DecisionKind, set[int]] = {}
    for item in items:
        listed = _Listed(item.id, ReviewKind(item.kind), item.rule_id, tuple(item.override_roles))
        for kind in BULK_KINDS & permitted_decisions(actor, listed):
            allowed.setdefault(kind, set()).add(item.id)
    return {kind: frozenset(ids) for kind, ids in allowed.items()}


def ask(kind: DecisionKind, items: Sequence[QueueItem]) -> None:
    """Remember that ``kind`` was asked for on ``items``, as the row versions listed show them."""
    st.session_state[ACTION] = {
        "kind": kind.value,
        "items": [
            {
                "id": i.id,
                "row_version": i.row_version,
                "agent": f"{i.agent} v{i.version}",
                "kind": i.kind,
                "tool": i.tool or "",
                "rule": i.rule_id or "",
                "args": compact(i.args, 80),
            }
            for i in items
        ],
    }


def pending() -> dict[str, object] | None:
    """The bulk action waiting for confirmation, if any."""
    action = st.session_state.get(ACTION)
    return action if isinstance(action, dict) else None


def _forget() -> None:
    st.session_state.pop(ACTION, None)


@st.dialog("Confirm the bulk decision", width="large", on_dismiss=_forget)
def confirm(actor: Actor, action: dict[str, object]) -> None:
    """The dialog: the listed reviews, a reason, and confirm or cancel."""
    kind = DecisionKind(str(action["kind"]))
    raw_items = action["items"]
    items = [dict(i) for i in raw_items] if isinstance(raw_items, list) else []
    verb = "approve" if kind is DecisionKind.APPROVE else "reject"
    count = f"{len(items)} review" + ("" if len(items) == 1 else "s")
    st.markdown(f"You are about to **{verb} {count}**, each decided and audited on its own:")
    st.dataframe(
        pd.DataFrame(items, columns=["id", "agent", "kind", "tool", "rule", "args"]),
        hide_index=True,
        key="queue.bulk_items",
    )
    st.text_input(
        "Reason (required)" if kind is DecisionKind.REJECT else "Reason (optional)",
        key=REASON,
    )
    go, cancel = st.columns(2)
    if cancel.button("Cancel", key="queue.bulk_cancel"):
        _forget()
        st.rerun()
    if not go.button(f"{verb.capitalize()} {len(items)}", key="queue.bulk_confirm", type="primary"):
        return
    seen = {int(i["id"]): int(i["row_version"]) for i in items}
    try:
        outcomes = decide_many(
            platform(), actor, kind, seen, reason=str(st.session_state.get(REASON) or "")
        )
    except (ServiceError, StorageError, SQLAlchemyError) as exc:
        # Nothing was decided (a missing reason): the dialog stays open to fix it.
        st.error(describe(exc))
        return
    forget_lists()
    st.session_state[OUTCOMES] = [
        {"review": o.review_id, "decided": o.decided, "message": sentence(o.message)}
        for o in outcomes
    ]
    _forget()
    st.rerun()


def show_outcomes() -> None:
    """What the last bulk decision did, item by item, shown once."""
    outcomes = st.session_state.pop(OUTCOMES, None)
    if not isinstance(outcomes, list) or not outcomes:
        return
    done = [o for o in outcomes if o["decided"]]
    failed = [o for o in outcomes if not o["decided"]]
    if done:
        st.success(f"{len(done)} of {len(outcomes)} reviews decided.")
    for outcome in failed:
        st.warning(str(outcome["message"]))
