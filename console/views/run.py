"""One run's trace (``/run?run=ID``): header, timeline, latency, tool calls, decisions, output
and the version the run was pinned to when it started. A run that is still going is followed
live.

It is a page of its own (hidden from the navigation) so that the sidebar's Runs link leaves it
for the list; ``/runs?run=ID`` links still land here.
"""

from __future__ import annotations

import streamlit as st

from agent.inputs import whole_number
from agent.reads.runs import model_usage, run_details
from console.components.feedback import one_sentence
from console.components.trace import render_trace
from console.resources import platform
from console.session import require_user
from console.widgets.add_case import add_to_suite
from console.widgets.undo import undo_panel
from storage.types import utcnow

LIVE_REFRESH_S = 2

actor = require_user()


def _live_trace(run_id: int) -> None:
    with one_sentence():
        trace = run_details(platform(), actor, run_id)
        usage = model_usage(platform(), actor, run_id)
    if trace.run.status.is_terminal:
        st.rerun(scope="app")  # finished: draw it once more as a still page
    render_trace(trace, now=utcnow(), usage=usage)


st.title("Run")
st.page_link("views/runs.py", label="Back to runs", icon=":material/arrow_back:")
raw = st.query_params.get("run") or ""
run_id = whole_number(raw)
if not raw:
    st.info("No run is named here: open one from the Runs list (a click on its row).")
    st.stop()
if run_id is None:
    st.error(f"The link names run {raw[:40]!r}, which is not a run number.")
    st.stop()
with one_sentence():
    trace = run_details(platform(), actor, run_id)
    usage = model_usage(platform(), actor, run_id)
if trace.run.status.is_terminal:
    render_trace(trace, now=utcnow(), usage=usage)
else:
    st.fragment(run_every=LIVE_REFRESH_S)(_live_trace)(run_id)
undo_panel(actor, run_id, key="runs")
add_to_suite(actor, trace.run.agent, run_id, key="runs")
