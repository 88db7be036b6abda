""" "Add to suite": an engineer turns a production run, and what people decided on it, into a case
of one of the agent's evaluation suites (the run page and a decided review show it)."""

from __future__ import annotations

import streamlit as st

from agent.actors import Actor
from agent.evals.cases import DEFAULT_TAGS, AddedCase, add_case
from agent.evals.suites import EVAL_ROLES, list_suites
from console.resources import platform
from console.widgets.feedback import attempt

TAGS = ("normal", "edge", "security")


def add_to_suite(actor: Actor, agent: str, run_id: int, *, key: str) -> None:
    """The form under widget keys ``{key}.add_case.*``, shown to engineers only.

    Args:
        actor: who is signed in.
        agent: the run's agent (its suites are offered).
        run_id: the production run the case is made from.
        key: the view's prefix for the widget keys.
    """
    if not actor.has_any(EVAL_ROLES):
        return
    suites = attempt(lambda: list_suites(platform(), actor, agent))
    if suites is None:
        return
    st.subheader("Add to an evaluation suite")
    if not suites:
        st.caption(
            f"{agent} has no evaluation suite yet; store one with "
            f"`steward evals create {agent} SUITE.yaml`, then add this run to it."
        )
        return
    prefix = f"{key}.add_case"
    with st.form(prefix):
        left, middle, right = st.columns(3)
        suite = left.selectbox("Suite", [s.name for s in suites], key=f"{prefix}.suite")
        name = middle.text_input("Case name", value=f"run-{run_id}", key=f"{prefix}.name")
        tags = right.multiselect(
            "Tags",
            list(TAGS),
            default=list(DEFAULT_TAGS),
            accept_new_options=True,
            key=f"{prefix}.tags",
        )
        submitted = st.form_submit_button("Add to suite", key=f"{prefix}.submit")
    if not submitted:
        return

    def add() -> AddedCase:
        return add_case(
            platform(),
            actor,
            agent,
            str(suite),
            run_id,
            name=name.strip() or None,
            tags=tags or DEFAULT_TAGS,
        )

    added = attempt(add)
    if added is not None:
        st.success(
            f"Added case {added.name} (expects {', '.join(added.case['expect'])}) to suite "
            f"{added.suite.name}, which now has {added.suite.cases} cases.",
            icon=":material/playlist_add_check:",
        )
