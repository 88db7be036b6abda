"""Undo on the run page: the attempts to undo this run's calls, the call an undo run undoes, and
a form to start an undo (operators and managers; the service checks the role again)."""

from __future__ import annotations

import json
from functools import partial

import pandas as pd
import streamlit as st

from agent.actors import UNDO_ROLES, Actor
from agent.undo import UndoLinks, UndoStarted, undo_call, undo_links
from console.components.formatting import option_label, when
from console.resources import platform
from console.widgets.feedback import attempt


def undo_panel(actor: Actor, run_id: int, *, key: str) -> None:
    """The run's undo links both ways and, for those who may, the Undo form (``{key}.undo.*``)."""
    links = attempt(lambda: undo_links(platform(), actor, run_id))
    if links is None:
        return
    if links.undoes is not None:
        undone = links.undoes
        st.info(
            f"This run is an attempted undo of call {undone.original_call_id} of run "
            f"{undone.original_run_id}, asked by {undone.requested_by}: {undone.reason}",
            icon=":material/undo:",
        )
        st.page_link(
            "views/runs.py",
            label=f"Open run {undone.original_run_id}",
            icon=":material/timeline:",
            query_params={"run": str(undone.original_run_id)},
        )
    if links.attempts:
        _attempts(links)
    if links.offers and actor.has_any(UNDO_ROLES):
        _form(actor, links, key=f"{key}.undo")


def _attempts(links: UndoLinks) -> None:
    st.markdown("**Undo attempts**")
    st.caption(
        "Each is an attempted compensation: its call's ledger status says whether it ran, "
        "not whether the effect was reversed."
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "undo of call": a.original_call_id,
                    "undo with": a.tool,
                    "task": a.task_id,
                    "run": a.run_id,
                    "task status": a.task_status.value,
                    "undo call": a.call_status.value if a.call_status else "not run",
                    "asked by": a.requested_by,
                    "at": when(a.requested_at),
                    "reason": a.reason,
                }
                for a in links.attempts
            ]
        ),
        hide_index=True,
    )


def _form(actor: Actor, links: UndoLinks, *, key: str) -> None:
    st.markdown("**Undo a call**")
    labels = {
        o.call_id: f"call {o.call_id} · {o.tool} {json.dumps(o.args)} → {o.compensating_tool}"
        for o in links.offers
    }
    with st.form(key):
        chosen = st.selectbox(
            "Call", list(labels), format_func=partial(option_label, labels), key=f"{key}.call"
        )
        reason = st.text_input("Reason", key=f"{key}.reason", placeholder="Why (required)")
        submitted = st.form_submit_button("Undo", key=f"{key}.submit", icon=":material/undo:")
    if not submitted or chosen is None:
        return

    def start() -> UndoStarted:
        return undo_call(platform(), actor, int(chosen), reason=reason)

    started = attempt(start)
    if started is not None:
        st.success(
            f"The undo of call {started.original_call_id} is queued as task {started.task_id}: "
            f"{started.tool} goes through the policy, and a review if it asks for one, "
            "before it runs.",
            icon=":material/undo:",
        )
