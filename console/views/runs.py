"""Runs: a filtered, paged list of runs, and one run's trace when the link names it (``?run=ID``).

A run that is still going is followed live; the trace shows the version and policy the run was
pinned to when it started, not the agent's active version now.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import partial

import pandas as pd
import streamlit as st

from agent.inputs import whole_number
from agent.reads.runs import RunFilter, model_usage, run_details
from console.components import data
from console.components.feedback import one_sentence
from console.components.formatting import option_label, when
from console.components.trace import render_trace
from console.resources import platform
from console.session import require_user
from console.widgets.add_case import add_to_suite
from console.widgets.undo import undo_panel
from storage.enums import ErrorClass, RunStatus
from storage.types import utcnow

LIVE_REFRESH_S = 2
PAGE = "runs.page"
CUSTOM = "Custom dates"
RANGES: dict[str, timedelta | None] = {
    "Any time": None,
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    CUSTOM: None,
}

actor = require_user()
st.session_state.setdefault(PAGE, 1)


def _open_run() -> None:
    chosen = st.session_state.get("runs.open")
    if chosen is not None:
        st.query_params["run"] = str(chosen)


def _close_run() -> None:
    st.query_params.pop("run", None)
    st.session_state["runs.open"] = None


def _first_page() -> None:
    st.session_state[PAGE] = 1


def _time_range(label: str) -> tuple[datetime | None, datetime | None]:
    if label == CUSTOM:
        today = utcnow().date()
        picked = st.date_input(
            "Dates (UTC)",
            value=(today - timedelta(days=7), today),
            key="runs.filter.dates",
            on_change=_first_page,
        )
        days = [d for d in (picked if isinstance(picked, tuple) else (picked,)) if d]
        if not days or not isinstance(days[0], date):
            return None, None
        start, end = days[0], days[-1]
        return (
            datetime.combine(start, time.min, UTC),
            datetime.combine(end + timedelta(days=1), time.min, UTC),
        )
    span = RANGES.get(label)
    if span is None:
        return None, None
    # Minute precision keeps the filter (and so the cached page) stable between reruns.
    now = utcnow().replace(second=0, microsecond=0)
    return now - span, None


def _run_list() -> None:
    st.title("Runs")
    with one_sentence():
        choices = data.run_filters(data.database(), data.reader(actor))
    columns = st.columns(5)
    agent = columns[0].selectbox(
        "Agent",
        choices.agents,
        index=None,
        placeholder="Any agent",
        key="runs.filter.agent",
        on_change=_first_page,
    )
    version = columns[1].selectbox(
        "Version",
        choices.versions_of(agent),
        index=None,
        placeholder="Any",
        key="runs.filter.version",
        on_change=_first_page,
    )
    status = columns[2].selectbox(
        "Status",
        [s.value for s in choices.statuses],
        index=None,
        placeholder="Any status",
        key="runs.filter.status",
        on_change=_first_page,
    )
    error_class = columns[3].selectbox(
        "Error class",
        [e.value for e in choices.error_classes],
        index=None,
        placeholder="Any error",
        key="runs.filter.error_class",
        on_change=_first_page,
    )
    span = columns[4].selectbox(
        "Time range", list(RANGES), key="runs.filter.range", on_change=_first_page
    )
    since, until = _time_range(span)
    flt = RunFilter(
        agent=agent,
        version=version,
        status=RunStatus(status) if status else None,
        error_class=ErrorClass(error_class) if error_class else None,
        since=since,
        until=until,
    )
    with one_sentence():
        page = data.run_page(data.database(), data.reader(actor), flt, int(st.session_state[PAGE]))
    st.caption(f"{page.total:,} runs match · page {page.number} of {page.pages}")
    if not page.items:
        st.info("No run matches these filters.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "run": r.id,
                    "task": r.task_id,
                    "agent": f"{r.agent} v{r.version}",
                    "status": r.status,
                    "error class": r.error_class or "",
                    "steps": r.steps,
                    "agent time ms": r.agent_time_ms,
                    "created": when(r.created_at),
                    "finished": when(r.finished_at),
                }
                for r in page.items
            ]
        ),
        hide_index=True,
        key="runs.table",
    )
    if page.pages > 1:
        st.pagination(page.pages, key=PAGE)
    labels = {r.id: f"Run {r.id} · {r.agent} v{r.version} · {r.status}" for r in page.items}
    st.selectbox(
        "Open a run",
        list(labels),
        index=None,
        format_func=partial(option_label, labels),
        placeholder="Choose a run to see its trace",
        key="runs.open",
        on_change=_open_run,
    )


def _live_trace(run_id: int) -> None:
    with one_sentence():
        trace = run_details(platform(), actor, run_id)
        usage = model_usage(platform(), actor, run_id)
    if trace.run.status.is_terminal:
        st.rerun(scope="app")  # finished: draw it once more as a still page
    render_trace(trace, now=utcnow(), usage=usage)


def _run_page(raw: str) -> None:
    st.title("Runs")
    st.button("Back to runs", key="runs.back", icon=":material/arrow_back:", on_click=_close_run)
    run_id = whole_number(raw)
    if run_id is None:
        st.error(f"The link names run {raw[:40]!r}, which is not a run number.")
        return
    with one_sentence():
        trace = run_details(platform(), actor, run_id)
        usage = model_usage(platform(), actor, run_id)
    if trace.run.status.is_terminal:
        render_trace(trace, now=utcnow(), usage=usage)
    else:
        st.fragment(run_every=LIVE_REFRESH_S)(_live_trace)(run_id)
    undo_panel(actor, run_id, key="runs")
    add_to_suite(actor, trace.run.agent, run_id, key="runs")


linked = st.query_params.get("run")
if linked:
    _run_page(linked)
else:
    _run_list()
