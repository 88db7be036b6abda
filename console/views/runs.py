"""Runs: a filtered, paged list of runs; a click on a row opens the run's own page
(``views/run.py``), and so does an older ``/runs?run=ID`` link."""

from __future__ import annotations

import zlib
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from agent.reads.runs import RunFilter
from console.components import data
from console.components.feedback import one_sentence
from console.components.formatting import when
from console.components.tables import clicked_row
from console.session import require_user
from storage.enums import ErrorClass, RunStatus
from storage.types import utcnow

RUN_PAGE = "views/run.py"
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


def _open(run_id: int) -> None:
    st.switch_page(RUN_PAGE, query_params={"run": str(run_id)})


def _time_range(label: str) -> tuple[datetime | None, datetime | None]:
    if label == CUSTOM:
        today = utcnow().date()
        picked = st.date_input(
            "Dates (UTC)", value=(today - timedelta(days=7), today), key="runs.filter.dates"
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
    )
    version = columns[1].selectbox(
        "Version",
        choices.versions_of(agent),
        index=None,
        placeholder="Any",
        key="runs.filter.version",
    )
    status = columns[2].selectbox(
        "Status",
        [s.value for s in choices.statuses],
        index=None,
        placeholder="Any status",
        key="runs.filter.status",
    )
    error_class = columns[3].selectbox(
        "Error class",
        [e.value for e in choices.error_classes],
        index=None,
        placeholder="Any error",
        key="runs.filter.error_class",
    )
    span = columns[4].selectbox("Time range", list(RANGES), key="runs.filter.range")
    since, until = _time_range(span)
    flt = RunFilter(
        agent=agent,
        version=version,
        status=RunStatus(status) if status else None,
        error_class=ErrorClass(error_class) if error_class else None,
        since=since,
        until=until,
    )
    # The page number lives in a widget keyed by the filters as chosen, so a new filter starts
    # on page 1 without writing the widget's value through session state (which Streamlit
    # warns about, with a stack dump, for a widget that also has a default).
    chosen = (agent, version, status, error_class, span, st.session_state.get("runs.filter.dates"))
    page_key = f"{PAGE}.{zlib.crc32(repr(chosen).encode())}"
    with one_sentence():
        page = data.run_page(
            data.database(), data.reader(actor), flt, int(st.session_state.get(page_key, 1))
        )
    st.caption(f"{page.total:,} runs match · page {page.number} of {page.pages}")
    if not page.items:
        if page.total == 0 and flt == RunFilter():
            st.info(
                "No run yet: submit a task on the Tasks page (or `steward submit`), and the "
                "worker's runs appear here."
            )
        else:
            st.info("No run matches these filters: clear one, or widen the time range.")
        return
    st.caption("Click a row to open its run.")
    row = clicked_row(
        pd.DataFrame(
            [
                {
                    "run": r.id,
                    "task": r.task_id,
                    "agent": f"{r.agent} v{r.version}",
                    "outcome": r.outcome,
                    "error class": r.error_class or "",
                    "steps": r.steps,
                    "agent time ms": r.agent_time_ms,
                    "created": when(r.created_at),
                    "finished": when(r.finished_at),
                }
                for r in page.items
            ]
        ),
        key="runs.table",
        column_config={
            "outcome": st.column_config.TextColumn(
                "outcome",
                help="The run's status and, once it answered, its resolution: "
                "'succeeded · declined' ended well by declining; nothing was done.",
            ),
            "agent time ms": st.column_config.NumberColumn("agent time", format="%.0f ms"),
        },
    )
    if row is not None and row < len(page.items):
        _open(page.items[row].id)
    if page.pages > 1:
        st.pagination(page.pages, key=page_key)


linked = st.query_params.get("run")
if linked:
    # An older link (``/runs?run=ID``) opens the run's own page.
    st.switch_page(RUN_PAGE, query_params={"run": linked})
_run_list()
