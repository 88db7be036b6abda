"""The audit log for managers and admins: filtered pages, and a check of the hash chain."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from agent.actors import Actor
from agent.reads.audit import (
    AuditEntry,
    AuditFilter,
    audit_filter_values,
    audit_log,
    verify_audit_log,
)
from agent.reads.paging import Page
from console.resources import platform
from console.session import require_user
from console.widgets.choice import remembered_choice
from console.widgets.feedback import attempt
from console.widgets.timerange import time_range_picker

ANYONE, ANY_ACTION, ANY_TARGET = "Anyone", "Any action", "Any target"
PAGE = "audit.page"
PAGE_SIZES = [25, 50, 100, 200]


def first_page() -> None:
    """Filter callback: a new filter starts on its first page."""
    st.session_state[PAGE] = 1


def turn(by: int) -> None:
    st.session_state[PAGE] = max(1, int(st.session_state.get(PAGE, 1)) + by)


def load_page(actor: Actor, flt: AuditFilter, number: int, size: int) -> Page[AuditEntry]:
    """Page ``number`` (from 1) of the events ``flt`` matches, ``size`` to a page.

    A page past the end (the log shrank under a filter) shows the last one instead.
    """
    page = audit_log(platform(), actor, flt, offset=(max(number, 1) - 1) * size, limit=size)
    if not page.items and page.total:
        page = audit_log(platform(), actor, flt, offset=page.last_offset, limit=size)
    return page


def entries_frame(page: Page[AuditEntry]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "#": e.seq,
                "when": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": f"{e.target_type} {e.target_id}".strip(),
                "open": target_link(e.target_type, e.target_id),
                "details": json.dumps(e.payload, sort_keys=True, ensure_ascii=False),
            }
            for e in page.items
        ],
        columns=["#", "when", "actor", "action", "target", "open", "details"],
    )


# Targets that have a page of their own, and the address that opens one.
TARGET_PAGES = {"run": "/run?run={}", "review": "/queue?review={}"}


def target_link(target_type: str | None, target_id: str | None) -> str | None:
    """The address of the target's page, when it has one (a run, a review)."""
    pattern = TARGET_PAGES.get(target_type or "")
    return pattern.format(target_id) if pattern and target_id else None


def verify_panel(actor: Actor) -> None:
    st.subheader("Integrity")
    st.caption(
        "Every event carries the hash of the one before it: editing, deleting or reordering an "
        "event breaks the chain from that point on."
    )
    if not st.button("Verify the hash chain", key="audit.verify", icon=":material/verified:"):
        return
    chain = attempt(lambda: verify_audit_log(platform(), actor))
    if chain is None:
        return
    if chain.ok:
        st.success(f"The audit chain is intact: {chain.count:,} events verified.")
    else:
        st.error(
            f"The audit chain is broken at event #{chain.first_bad_seq} (id "
            f"{chain.first_bad_id}): {chain.problem}. The {chain.count:,} events before it "
            "verified."
        )


st.title("Audit log")
actor = require_user()
facets = attempt(lambda: audit_filter_values(platform(), actor))
if facets is None:
    st.stop()

st.session_state.setdefault(PAGE, 1)
top = st.columns(4)
with top[0]:
    who = remembered_choice("Actor", [ANYONE, *facets.actors], "audit.actor", on_change=first_page)
with top[1]:
    what = remembered_choice(
        "Action", [ANY_ACTION, *facets.actions], "audit.action", on_change=first_page
    )
with top[2]:
    target_type = remembered_choice(
        "Target type", [ANY_TARGET, *facets.target_types], "audit.target_type", on_change=first_page
    )
with top[3]:
    target_id = st.text_input(
        "Target id", key="audit.target_id", on_change=first_page, placeholder="e.g. olga or 12"
    )
bottom = st.columns([2, 1, 1])
with bottom[0]:
    picked = time_range_picker("audit", default="All time")
with bottom[1]:
    st.session_state.setdefault("audit.page_size", 50)
    size = int(st.selectbox("Per page", PAGE_SIZES, key="audit.page_size", on_change=first_page))

flt = AuditFilter(
    actor=None if who == ANYONE else who,
    action=None if what == ANY_ACTION else what,
    target_type=None if target_type == ANY_TARGET else target_type,
    target_id=target_id.strip() or None,
    since=picked.since,
    until=picked.until,
)
page = attempt(lambda: load_page(actor, flt, int(st.session_state[PAGE]), size))
if page is None:
    st.stop()
st.session_state[PAGE] = page.number
with bottom[2]:
    st.number_input("Page", min_value=1, max_value=page.pages, step=1, key=PAGE)

st.caption(f"{page.total:,} events match; page {page.number} of {page.pages}, newest first.")
if page.items:
    st.dataframe(
        entries_frame(page),
        hide_index=True,
        key="audit.events",
        column_config={
            "open": st.column_config.LinkColumn(
                "open", display_text=r"(run=\d+|review=\d+)", help="The target's own page."
            )
        },
    )
else:
    st.info("No event matches these filters: clear one, or widen the dates.")
nav = st.columns(6)
nav[0].button("← Newer", key="audit.prev", on_click=turn, args=(-1,), disabled=page.number <= 1)
nav[1].button("Older →", key="audit.next", on_click=turn, args=(1,), disabled=not page.has_more)
verify_panel(actor)
