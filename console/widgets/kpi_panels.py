"""The KPI view's panels: headline figures, trend charts, detail tables, the coherence proxies
and the CSV export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from agent.reads.kpis import KpiFilter, KpiReport

DASH = "—"


def percent(value: float | None, missing: str = "") -> str:
    """A rate as a percentage, or a dash (with why, when ``missing`` says) when there is
    nothing to divide."""
    if value is None or pd.isna(value):
        return f"{DASH} {missing}".strip()
    return f"{value:.1%}"


def number(value: float | None, unit: str = "", missing: str = "") -> str:
    """A figure with one decimal and its unit, or a dash (with why) when unknown."""
    if value is None or pd.isna(value):
        return f"{DASH} {missing}".strip()
    return f"{value:,.1f}{unit}"


def tools_table(tools: pd.DataFrame) -> pd.DataFrame:
    """Tool health as people read it: rates in percent, latencies in ms."""
    return pd.DataFrame(
        [
            {
                "tool": r["tool"],
                "calls": int(r["calls"]),
                "success": percent(r["success_rate"], "(no call)"),
                "first-attempt success": percent(r["first_attempt_success_rate"], "(no call)"),
                "retried": int(r["retried"]),
                "latency p50": number(r["p50_ms"], " ms", "(no timed call)"),
                "latency p95": number(r["p95_ms"], " ms", "(no timed call)"),
                "circuit openings": int(r["circuit_openings"]),
            }
            for r in tools.to_dict(orient="records")
        ],
        columns=[
            "tool",
            "calls",
            "success",
            "first-attempt success",
            "retried",
            "latency p50",
            "latency p95",
            "circuit openings",
        ],
    )


def outcomes_table(report: KpiReport) -> pd.DataFrame:
    """Runs per outcome (status and resolution), with each one's share of the runs."""
    total = report.runs["total"]
    return pd.DataFrame(
        [
            {"outcome": name, "runs": n, "share": percent(n / total if total else None)}
            for name, n in report.runs.get("by_outcome", {}).items()
        ],
        columns=["outcome", "runs", "share"],
    )


def headline(report: KpiReport) -> None:
    """The eight figures a manager reads first."""
    runs, reviews, latency = report.runs, report.reviews, report.latency
    row = st.columns(4)
    row[0].metric("Runs", f"{runs['total']:,}", help=f"{runs['finished']:,} finished")
    row[1].metric(
        "Completion rate",
        percent(runs["completion_rate"], "(no finished run)"),
        help="Succeeded runs of the finished ones. A run that succeeded by declining (a "
        "refund a person rejected) counts here: the Outcomes table tells them apart.",
    )
    row[2].metric(
        "Autonomous resolution",
        percent(runs["autonomous_resolution_rate"], "(no finished run)"),
        help="Succeeded without any review, of the finished runs.",
    )
    row[3].metric("Escalation rate", percent(runs["escalation_rate"], "(no run)"))
    row = st.columns(4)
    row[0].metric("Run latency p50", number(latency["run_ms"]["p50"], " ms", "(no finished run)"))
    row[1].metric("Run latency p95", number(latency["run_ms"]["p95"], " ms", "(no finished run)"))
    row[2].metric(
        "Time to decision p50",
        number(reviews.get("time_to_decision_s", {}).get("p50"), " s", "(no decision)"),
    )
    row[3].metric(
        "SLA compliance", percent(reviews.get("sla_compliance"), "(no review with an SLA)")
    )
    st.subheader("Outcomes")
    st.caption(
        "Each run's status and, once it answered, its resolution: 'succeeded · declined' "
        "ended well by declining (nothing was paid or granted)."
    )
    outcomes = outcomes_table(report)
    if outcomes.empty:
        st.info("No run in this range: widen the time range or choose another agent.")
    else:
        st.dataframe(outcomes, hide_index=True, key="kpis.outcomes")


def trend(report: KpiReport) -> None:
    """Volumes and rates per period."""
    st.subheader("Trend")
    if report.trend.empty:
        st.info("No runs or reviews in this range: widen the time range or choose another agent.")
        return
    frame = report.trend.set_index("period")
    left, right = st.columns(2)
    left.caption("Runs and reviews per period")
    left.bar_chart(frame[["runs", "reviews"]], stack=False)
    right.caption("Completion, escalation and SLA compliance")
    right.line_chart(frame[["completion_rate", "escalation_rate", "sla_compliance"]])


def latency_table(report: KpiReport) -> pd.DataFrame:
    """Run, tool-call and decision latency percentiles, one row each, with their units."""
    rows = (
        ("run (agent time)", report.latency["run_ms"], " ms", "(no finished run)"),
        ("tool call", report.latency.get("tool_ms", {}), " ms", "(no tool call)"),
        (
            "time to decision",
            report.reviews.get("time_to_decision_s", {}),
            " s",
            "(no decision)",
        ),
    )
    return pd.DataFrame(
        [
            {
                "measure": measure,
                **{p: number(values.get(p), unit, missing) for p in ("p50", "p95", "p99")},
            }
            for measure, values, unit, missing in rows
        ],
        columns=["measure", "p50", "p95", "p99"],
    )


def details(report: KpiReport) -> None:
    """Tool health, latency, errors, policy decisions and review decisions (proposal validity
    is with the other coherence figures, in ``coherence``)."""
    left, right = st.columns(2)
    with left:
        st.subheader("Tool health")
        if report.tools.empty:
            st.info("No tool was called in this range: widen the time range.")
        else:
            st.dataframe(tools_table(report.tools), hide_index=True, key="kpis.tools")
        st.subheader("Latency percentiles")
        st.dataframe(latency_table(report), hide_index=True, key="kpis.latency")
    with right:
        st.subheader("Errors by class")
        errors = pd.DataFrame(list(report.errors.items()), columns=["error class", "steps"])
        if errors.empty:
            st.info("No step failed in this range.")
        else:
            st.dataframe(errors, hide_index=True, key="kpis.errors")
        st.subheader("Policy decisions by rule")
        policy = report.policy.rename(columns={"rule_id": "rule", "count": "decisions"})
        if policy.empty:
            st.info("The policy decided no call in this range.")
        else:
            st.dataframe(policy, hide_index=True, key="kpis.policy")
    reviews = report.reviews
    st.subheader("Review decisions")
    decisions = pd.DataFrame(
        [
            {
                "decision": kind,
                "count": n,
                "share": percent(reviews["decision_rates"].get(kind), "(no decision)"),
            }
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
    cols[0].metric("Proposal validity", percent(overall.get("valid_rate"), "(no proposal)"))
    cols[1].metric(
        "Path efficiency", percent(overall.get("path_efficiency"), "(no known shortest path)")
    )
    cols[2].metric(
        "Median tool calls per succeeded run",
        number(overall.get("median_tool_calls"), missing="(no succeeded run)"),
    )
    if report.coherence.empty:
        st.info("No proposed tool call in this range: widen the time range.")
        return
    st.dataframe(coherence_table(report.coherence), hide_index=True, key="kpis.coherence")


def coherence_table(coherence: pd.DataFrame) -> pd.DataFrame:
    """The coherence proxies per version, rates in percent and a dash saying why when a
    version has nothing to measure."""
    return pd.DataFrame(
        [
            {
                "agent": r["agent"],
                "version": int(r["version"]),
                "proposals": int(r["proposals"]),
                "invalid or out of scope": int(r["invalid_or_out_of_scope"]),
                "proposal validity": percent(r["proposal_validity"], "(no proposal)"),
                "runs measured": int(r["runs_measured"]),
                "path efficiency": percent(r["path_efficiency"], "(no known shortest path)"),
                "median tool calls": number(r["median_tool_calls"], missing="(no succeeded run)"),
            }
            for r in coherence.to_dict(orient="records")
        ]
    )


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
