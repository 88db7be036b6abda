"""KPIs for managers: one agent, version and time range, with trends, tools, errors, policy and
coherence and canary releases (automatic rollbacks called out); production work only
(evaluations never count), under an alert when a scheduled evaluation of an active version is
failing."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from agent.actors import Actor
from agent.reads.kpis import (
    Grain,
    KpiFilter,
    KpiReport,
    kpi_comparison,
    kpi_report,
    model_usage_by_version,
)
from agent.reads.runs import run_choices
from console.components.data import database
from console.resources import platform
from console.session import require_user
from console.widgets.autonomy_panel import autonomy_section
from console.widgets.canary_panel import canaries_section
from console.widgets.choice import remembered_choice
from console.widgets.eval_alert import scheduled_evaluation_alert
from console.widgets.feedback import attempt
from console.widgets.kpi_panels import coherence, details, export, headline, trend
from console.widgets.timerange import time_range_picker

ALL_AGENTS = "All agents"
ALL_VERSIONS = "All versions"


@st.cache_data(ttl=60, max_entries=32, show_spinner="Computing KPIs…")
def load_report(database: str, actor: Actor, flt: KpiFilter, grain: Grain) -> KpiReport:
    """The KPI report, cached for a minute per database, viewer, filter and grain.

    ``database`` (the masked URL) is only part of the cache key, so two databases served by
    one process never share an entry.
    """
    return kpi_report(platform(), actor, flt, grain=grain)


@st.cache_data(ttl=60, max_entries=16, show_spinner="Comparing versions…")
def load_comparison(
    database: str, actor: Actor, flt: KpiFilter, *, agent: str, a: int, b: int
) -> pd.DataFrame:
    """Two versions side by side, cached like ``load_report``."""
    return kpi_comparison(platform(), actor, agent, a, b, flt=flt)


@st.cache_data(ttl=60, max_entries=16, show_spinner=False)
def load_model_usage(database: str, actor: Actor, flt: KpiFilter) -> pd.DataFrame | None:
    """Language-model usage per version (None: no run used a model), cached like the report."""
    return model_usage_by_version(platform(), actor, flt)


def agent_versions(actor: Actor) -> dict[str, list[int]]:
    """Every agent's version numbers, newest first."""
    choices = run_choices(platform(), actor)
    return {agent: sorted(choices.versions_of(agent), reverse=True) for agent in choices.agents}


def comparison(
    actor: Actor, flt: KpiFilter, agent: str, versions: list[int]
) -> pd.DataFrame | None:
    """The side-by-side panel, computed only once asked for (it costs two more reports)."""
    st.subheader("Compare two versions")
    if agent == ALL_AGENTS or len(versions) < 2:
        st.caption("Choose an agent with at least two versions to compare them.")
        return None
    if not st.toggle("Compare versions side by side", key="kpis.compare"):
        return None
    # Newest first: by default, the version before the newest against the newest.
    left, right = st.columns(2)
    with left:
        a = remembered_choice("Before", versions, "kpis.compare_a", default=versions[1])
    with right:
        b = remembered_choice("After", versions, "kpis.compare_b", default=versions[0])
    table = attempt(lambda: load_comparison(database(), actor, flt, agent=agent, a=a, b=b))
    if table is not None:
        st.dataframe(table, hide_index=True, key="kpis.comparison")
    return table


st.title("KPIs")
actor = require_user()
scheduled_evaluation_alert(actor)
catalogue = attempt(lambda: agent_versions(actor))
if catalogue is None:
    st.stop()

controls = st.columns([2, 2, 1, 1])
with controls[0]:
    picked = time_range_picker("kpis")
with controls[1]:
    agent = remembered_choice("Agent", [ALL_AGENTS, *catalogue], "kpis.agent")
with controls[2]:
    numbers = catalogue.get(agent, [])
    version = remembered_choice(
        "Version", [ALL_VERSIONS, *(str(n) for n in numbers)], "kpis.version"
    )
with controls[3]:
    st.session_state.setdefault("kpis.grain", "day")
    grain: Grain = (
        "hour" if st.radio("Trend by", ["day", "hour"], key="kpis.grain") == "hour" else "day"
    )

flt = KpiFilter(
    since=picked.since,
    until=picked.until,
    agent=None if agent == ALL_AGENTS else agent,
    version=None if version == ALL_VERSIONS else int(version),
)
report = attempt(lambda: load_report(database(), actor, flt, grain))
if report is None:
    st.stop()

scope = "every agent" if flt.agent is None else flt.agent
if flt.version is not None:
    scope += f" version {flt.version}"
st.caption(
    f"{picked.label} (UTC), {scope}: production runs started and reviews raised in that time "
    "(evaluation runs never count)."
)
headline(report)
trend(report)
details(report)
coherence(report)
usage = attempt(lambda: load_model_usage(database(), actor, flt))
if usage is not None:
    st.subheader("Language models")
    st.caption("Runs planned by a chat model: tokens, cost, model calls and their latency.")
    st.dataframe(usage, hide_index=True, key="kpis.model_usage")
compared = comparison(actor, flt, agent, numbers)
autonomy_section(actor, flt)
canaries_section(actor)
st.divider()
export(report, compared, flt, picked.label)
