"""Review queue: open reviews most urgent first, refreshed live; open one to decide it.

The list is a fragment that reruns itself every few seconds. The operator's place (the review
open in the pane, the reviews selected for a bulk decision, the filters) is kept by review id in
session state, so a refresh that adds or removes rows never moves it to another review.
"""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from agent.actors import DECIDE_ROLES
from agent.inputs import whole_number
from agent.reads.queue import QueueFilter, QueueSnapshot, review_context
from agent.runtime.escalation import describe_risk
from console.components import bulk, data
from console.components.feedback import one_sentence, show_flash
from console.components.formatting import compact, countdown, money, option_label, overdue
from console.components.review import FLASH, render_review
from console.components.tables import clicked_row
from console.components.teamwork import approvals_label, holder_label, next_button
from console.resources import platform
from console.session import require_user
from console.widgets.add_case import add_to_suite
from console.widgets.brake import paused_banner
from storage.enums import DecisionKind
from storage.types import utcnow

REFRESH_S = 10
OPENED = "queue.opened"
SELECTED = "queue.bulk"

st.title("Review queue")
actor = require_user()
paused_banner(actor)
st.session_state.setdefault(OPENED, None)
st.session_state.setdefault(SELECTED, [])
who = data.reader(actor)

bulk.show_outcomes()

with one_sentence():
    choices = data.queue_filters(data.database(), who)
# The filters live in the address too (?agent=support&kind=escalation...), so a view can be
# shared: a link opened afresh starts from them; a value no open review has is ignored.
URL_FILTERS = {
    "agent": ("queue.filter.agent", choices.agents),
    "version": ("queue.filter.version", choices.versions),
    "kind": ("queue.filter.kind", choices.kinds),
    "rule": ("queue.filter.rule", choices.rules),
    "tool": ("queue.filter.tool", choices.tools),
}
if not st.session_state.get("queue.filters_from_url"):
    st.session_state["queue.filters_from_url"] = True
    # A review's link (``/queue?review=12``, from a run's page) opens it in the pane.
    linked_review = whole_number(st.query_params.get("review") or "")
    if linked_review is not None:
        st.session_state[OPENED] = linked_review
        st.session_state["queue.open"] = linked_review
    for param, (key, options) in URL_FILTERS.items():
        wanted = st.query_params.get(param)
        chosen = next((o for o in options if str(o) == wanted), None)
        if chosen is not None:
            st.session_state[key] = chosen
    # A notification's link (?review=ID) opens that review in the pane.
    linked_review = whole_number(st.query_params.get("review") or "")
    if linked_review is not None:
        st.session_state[OPENED] = linked_review
        st.session_state["queue.open"] = linked_review
columns = st.columns(5)
flt = QueueFilter(
    agent=columns[0].selectbox(
        "Agent", choices.agents, index=None, placeholder="Any agent", key="queue.filter.agent"
    ),
    version=columns[1].selectbox(
        "Version", choices.versions, index=None, placeholder="Any", key="queue.filter.version"
    ),
    kind=columns[2].selectbox(
        "Kind", choices.kinds, index=None, placeholder="Any kind", key="queue.filter.kind"
    ),
    rule_id=columns[3].selectbox(
        "Rule", choices.rules, index=None, placeholder="Any rule", key="queue.filter.rule"
    ),
    tool=columns[4].selectbox(
        "Tool", choices.tools, index=None, placeholder="Any tool", key="queue.filter.tool"
    ),
)
for param, (key, _options) in URL_FILTERS.items():
    value = st.session_state.get(key)
    if value is None:
        st.query_params.pop(param, None)
    else:
        st.query_params[param] = str(value)


def _labels(snapshot: QueueSnapshot, opened: int | None) -> dict[int, str]:
    labels = {
        i.id: f"#{i.id} · {i.kind} · {i.tool or 'output'} · {i.agent} v{i.version}"
        for i in snapshot.items
    }
    if opened is not None and opened not in labels:
        labels[opened] = f"#{opened} (no longer in this list)"
    return labels


@st.fragment(run_every=REFRESH_S)
def queue_list(flt: QueueFilter) -> None:
    """The live list, the bulk selection and the picker that opens a review."""
    with one_sentence():
        snapshot = data.queue_snapshot(data.database(), who, flt)
    now = utcnow()
    total, late, shown = st.columns(3)
    total.metric("Open reviews", snapshot.open_count)
    late.metric("Overdue", snapshot.overdue_count)
    shown.metric("Shown", len(snapshot.items))
    if not snapshot.items:
        if snapshot.open_count:
            st.info("No open review matches these filters: clear one to see the others.")
        else:
            st.info(
                "Nothing is waiting for a decision. Reviews appear here when a policy escalates "
                "or blocks a call; submit work on the Tasks page to see one."
            )
    else:
        st.caption("Click a row to open the review.")
        row = clicked_row(
            pd.DataFrame(
                [
                    {
                        "review": i.id,
                        "SLA": countdown(i.sla_due_at, now),
                        "overdue": overdue(i.sla_due_at, now),
                        "amount": money(
                            (i.args or {}).get("amount"), (i.args or {}).get("currency")
                        ),
                        "risk": describe_risk(i.risk),
                        "kind": i.kind,
                        "status": i.status,
                        "agent": f"{i.agent} v{i.version}",
                        "tool": i.tool or "",
                        "rule": i.rule_id or "",
                        "tier": i.tier,
                        "approvals": approvals_label(i.approvals_required, i.approved_by),
                        "taken by": holder_label(i.assigned_to, i.assigned_at, now),
                        "reason": i.reason,
                        "args": compact(i.args, 80),
                    }
                    for i in snapshot.items
                ]
            ),
            key="queue.table",
            column_config={
                "overdue": st.column_config.CheckboxColumn("overdue", width="small"),
                "amount": st.column_config.TextColumn(
                    "amount", help="The money the call would move, when it names an amount."
                ),
                "risk": st.column_config.TextColumn(
                    "risk",
                    help="What the call does (reads only, changes data, cannot be undone) and "
                    "how much is at stake; the queue puts riskier calls first within an SLA.",
                ),
                "reason": st.column_config.TextColumn(width="large"),
            },
        )
        if row is not None and row < len(snapshot.items):
            picked = snapshot.items[row].id
            st.session_state[OPENED] = picked
            st.session_state["queue.open"] = picked
            st.rerun(scope="app")  # the pane below the fragment redraws only in a full run
        # The reasons in full, under the table: st.dataframe has no per-cell tooltip in
        # Streamlit 1.67 (streamlit/streamlit#7564; a pandas Styler's tooltips come out as raw
        # markup in its cells), and a click on a row opens the review with its reason anyway.
        rules = {i.rule_id: i.reason for i in snapshot.items if i.rule_id}
        with st.expander(f"Why these reviews were raised ({len(rules)} rules)"):
            for rule_id, reason in sorted(rules.items()):
                st.markdown(f"**`{rule_id}`**: {reason}")
        if snapshot.truncated:
            st.caption(
                f"The {len(snapshot.items)} most urgent of {snapshot.open_count}; "
                "filter to see others."
            )
    ids = [i.id for i in snapshot.items]
    opened = st.session_state[OPENED]
    labels = _labels(snapshot, opened)
    # Bulk decisions are offered only on the reviews the signed-in person may decide that
    # way (a manager reads the queue but decides nothing); the service checks again.
    offered = bulk.offered(actor, snapshot.items)
    decidable = [i for i in ids if any(i in allowed for allowed in offered.values())]
    if decidable:
        # Reviews decided elsewhere leave the list: drop them from the selection before the
        # widget is drawn, so it never holds a review that is not shown.
        st.session_state[SELECTED] = [i for i in st.session_state[SELECTED] if i in decidable]
        selected = st.multiselect(
            "Select for a bulk decision",
            decidable,
            key=SELECTED,
            format_func=partial(option_label, labels),
            placeholder="Choose reviews to approve or reject together",
        )
        approve, reject = st.columns(2)
        for column, kind, label in (
            (approve, DecisionKind.APPROVE, "Approve selected"),
            (reject, DecisionKind.REJECT, "Reject selected"),
        ):
            if kind not in offered:
                continue
            chosen = [i for i in snapshot.items if i.id in selected and i.id in offered[kind]]
            if column.button(
                f"{label} ({len(chosen)})", key=f"queue.bulk_{kind.value}", disabled=not chosen
            ):
                bulk.ask(kind, chosen)
                st.rerun(scope="app")  # the confirmation dialog opens from a full run

    choice = st.selectbox(
        "Open a review",
        list(labels),
        index=None,
        key="queue.open",
        format_func=partial(option_label, labels),
        placeholder="Choose a review to see it and decide",
    )
    if choice != opened:
        st.session_state[OPENED] = choice
        st.rerun(scope="app")  # the pane below the fragment redraws only in a full run


if actor.has_any(DECIDE_ROLES):
    next_button(flt)
queue_list(flt)

action = bulk.pending()
if action is not None:
    bulk.confirm(actor, action)

st.divider()
show_flash(FLASH)
opened_id = st.session_state[OPENED]
if opened_id is None:
    st.query_params.pop("review", None)
else:
    st.query_params["review"] = str(opened_id)
if opened_id is None:
    st.caption("Open a review from the list to see the task, the call and the trace.")
else:
    with one_sentence():
        context = review_context(platform(), actor, opened_id)
    render_review(context, now=utcnow())
    if not context.review.is_open:
        add_to_suite(actor, context.review.agent, context.review.run_id, key="queue")
