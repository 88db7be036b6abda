"""The KPI view's panels: headline figures, trend charts, detail tables, the coherence proxies
and the CSV export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from agent.reads.kpis import KpiFilter, KpiReport


def percent(value: float | None) -> str:
    """A rate as a percentage, or a dash when there is nothing to divide."""
    return "-" if value is None else f"{value:.1%}"


def number(value: float | None, unit: str = "") -> str:
    """A figure with one decimal and its unit, or a dash when unknown."""
    return "-" if value is None else f"{value:,.1f}{unit}"


def headline(report: KpiReport) -> None:
    """The eight figures a manager reads first."""
    runs, reviews, latency = report.runs, report.reviews, report.latency
    row = st.columns(4)
    row[0].metric("Runs", f"{runs['total']:,}", help=f"{runs['finished']:,} finished")
    row[1].metric("Completion rate", percent(runs["completion_rate"]))
    row[2].metric("Autonomous resolution", percent(runs["autonomous_resolution_rate"]))
    row[3].metric("Escalation rate", percent(runs["escalation_rate"]))
    row = st.columns(4)
    row[0].metric("Run latency p50", number(latency["run_ms"]["p50"], " ms"))
    row[1].metric("Run latency p95", number(latency["run_ms"]["p95"], " ms"))
    row[2].metric(
        "Time to decision p50", number(reviews.get("time_to_decision_s", {}).get("p50"), " s")
    )
    row[3].metric("SLA compliance", percent(reviews.get("sla_compliance")))


def trend(report: KpiReport) -> None:
    """Volumes and rates per period."""
    st.subheader("Trend")
    if report.trend.empty:
        st.info("No runs or reviews in this range.")
        return
    frame = report.trend.set_index("period")
    left, right = st.columns(2)
    left.caption("Runs and reviews per period")
    left.bar_chart(frame[["runs", "reviews"]], stack=False)
    right.caption("Completion, escalation and SLA compliance")
    right.line_chart(frame[["completion_rate", "escalation_rate", "sla_compliance"]])


def latency_table(report: KpiReport) -> pd.DataFrame:
    """Run, tool-call and decision latency percentiles, one row each."""
    return pd.DataFrame(
        [
            {"measure": "run (agent time, ms)", **report.latency["run_ms"]},
            {"measure": "tool call (ms)", **report.latency.get("tool_ms", {})},
            {"measure": "time to decision (s)", **report.reviews.get("time_to_decision_s", {})},
        ]
    )


def details(report: KpiReport) -> None:
    """Tool health, latency, errors, policy decisions and review decisions (proposal validity
    is with the other coherence figures, in ``coherence``)."""
    left, right = st.columns(2)
    with left:
        st.subheader("Tool health")
        st.dataframe(report.tools, hide_index=True, key="kpis.tools")
        st.subheader("Latency percentiles")
        st.dataframe(latency_table(report), hide_index=True, key="kpis.latency")
    with right:
        st.subheader("Errors by class")
        errors = pd.DataFrame(list(report.errors.items()), columns=["error class", "steps"])
        st.dataframe(errors, hide_index=True, key="kpis.errors")
        st.subheader("Policy decisions by rule")
        st.dataframe(report.policy, hide_index=True, key="kpis.policy")
    reviews = report.reviews
    st.subheader("Review decisions")
    decisions = pd.DataFrame(
        [
            {"decision": kind, "count": n, "share": reviews["decision_rates"].get(kind)}
            for kind, n in reviews.get("decisions", {}).items()
        ],
        columns=["decision", "count", "share"],
    )
    cols = st.columns([2, 1, 1])
    cols[0].dataframe(decisions, hide_index=True, key="kpis.decisions")
    cols[1].metric("Reviews raised", f"{reviews.get('total', 0):,}")
    cols[2].metric("Still open", f"{reviews.get('open', 0):,}")


COHERENCE_CAPTION = (
    "Production runs only. **Proposal validity**: the share of proposed tool calls the gate "
    "found valid and in scope (not refused at its scope or arguments stage; the re-check of an "
    "approved call is not a new proposal). **Path efficiency**: for each succeeded run with an "
    "intent, the shortest known path for that intent divided by the tool calls the run "
    "proposed, averaged per version (1.0: every run took the shortest known path). The shortest "
    "known path is the fewest tool calls that completed that intent, declared by an evaluation "
    "case or observed in a succeeded production run of the agent in this time range, over all "
    "its versions. The median tool calls of those runs is shown beside it."
)


def coherence(report: KpiReport) -> None:
    """Proposal validity and path efficiency per version, with how they are defined."""
    st.subheader("Coherence by version")
    st.caption(COHERENCE_CAPTION)
    overall = report.proposals
    cols = st.columns(3)
    cols[0].metric("Proposal validity", percent(overall.get("valid_rate")))
    cols[1].metric("Path efficiency", percent(overall.get("path_efficiency")))
    cols[2].metric("Median tool calls per succeeded run", number(overall.get("median_tool_calls")))
    if report.coherence.empty:
        st.info("No proposed tool call in this range.")
        return
    st.dataframe(report.coherence, hide_index=True, key="kpis.coherence")


def export(report: KpiReport, compared: pd.DataFrame | None, flt: KpiFilter, label: str) -> None:
    """A download button for every figure shown (and the comparison, when shown) as CSV."""
    frame = report.to_frame()
    if compared is not None:
        long = compared.melt(id_vars="metric", var_name="item", value_name="value")
        frame = pd.concat(
            [frame, long.assign(section="comparison")[["section", "item", "metric", "value"]]],
            ignore_index=True,
        )
    scope = "-".join(str(part) for part in (flt.agent or "all", flt.version or "all"))
    st.download_button(
        "Download what is shown (CSV)",
        data=frame.to_csv(index=False),
        file_name=f"steward-kpis-{scope}-{label.replace(' ', '-').lower()}.csv",
        mime="text/csv",
        key="kpis.download",
        icon=":material/download:",
    )
