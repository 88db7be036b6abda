"""The KPI page's autonomy section: how reviews end per rule (auto-allow candidates marked),
each reviewer's load and pace with their rubber stamps, and what reviews held back; each
table downloadable as CSV."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from agent.actors import Actor
from agent.reads.kpis import AutonomyReport, KpiFilter, autonomy_report
from console.components.data import database
from console.resources import platform
from console.widgets.feedback import attempt

_RATES = ("approve_rate", "edit_rate", "reject_rate", "override_rate", "expire_rate")


@st.cache_data(ttl=60, max_entries=16, show_spinner=False)
def load_autonomy(database: str, actor: Actor, flt: KpiFilter) -> AutonomyReport:
    """The autonomy report, cached for a minute like the KPI report."""
    return autonomy_report(platform(), actor, flt)


def autonomy_section(actor: Actor, flt: KpiFilter) -> None:
    """Where autonomy can grow, and where people's reviews change outcomes."""
    st.subheader("Autonomy calibration")
    report = attempt(lambda: load_autonomy(database(), actor, flt))
    if report is None:
        return
    if report.rules.empty:
        st.caption("No review was raised in this range: widen the range, or pick another agent.")
        return
    money, calls = st.columns(2)
    money.metric(
        "Held back by reviews",
        f"${report.money_held_usd:,.2f}",
        help="Amounts of rejected or expired calls, and what edits took off proposed amounts",
    )
    calls.metric(
        "Side-effecting calls stopped",
        f"{report.calls_held:,}",
        help="Writes and irreversible calls people rejected or let expire",
    )
    thresholds = report.thresholds
    st.markdown("**By rule**")
    st.caption(
        "How the reviews each rule raised ended. ✔ marks an auto-allow candidate: at least "
        f"{thresholds['auto_allow_min_decisions']} decisions, "
        f"{thresholds['auto_allow_min_share']:.0%} or more approved; check the change on the "
        "Versions page's policy suggestions before making it."
    )
    rules = report.rules.copy()
    for column in _RATES:
        rules[column] = rules[column].map(_percent)
    rules["median_decision_s"] = rules["median_decision_s"].map(_seconds)
    rules["auto_allow_candidate"] = rules["auto_allow_candidate"].map(
        lambda flag: "✔" if flag else ""
    )
    st.dataframe(
        rules.rename(columns=lambda c: c.replace("_", " ")),
        hide_index=True,
        key="kpis.autonomy_rules",
    )
    _download(report.rules, "autonomy-rules.csv", "kpis.autonomy_rules_csv")

    st.markdown("**By reviewer**")
    st.caption(
        f"Rubber stamps: high-risk calls (risk {thresholds['high_risk']} or more: irreversible, "
        f"or a write with $100 or more at stake) approved within "
        f"{thresholds['rubber_stamp_s']:g} seconds of being raised."
    )
    reviewers = report.reviewers.copy()
    for column in ("median_decision_s", "p95_decision_s"):
        reviewers[column] = reviewers[column].map(_seconds)
    st.dataframe(
        reviewers.rename(columns=lambda c: c.replace("_", " ")),
        hide_index=True,
        key="kpis.autonomy_reviewers",
    )
    _download(report.reviewers, "autonomy-reviewers.csv", "kpis.autonomy_reviewers_csv")
    if len(report.rubber_stamps):
        with st.expander(f"{len(report.rubber_stamps)} rubber stamp(s)"):
            stamps = report.rubber_stamps.copy()
            stamps["run"] = stamps["run_id"].map(lambda run: f"/runs?run={run}")
            st.dataframe(
                stamps,
                hide_index=True,
                key="kpis.autonomy_stamps",
                column_config={"run": st.column_config.LinkColumn("run", display_text="open")},
            )

    if len(report.held_back):
        st.markdown("**Held back, by tool**")
        st.dataframe(report.held_back, hide_index=True, key="kpis.autonomy_held")
        _download(report.held_back, "autonomy-held-back.csv", "kpis.autonomy_held_csv")


def _download(frame: pd.DataFrame, name: str, key: str) -> None:
    st.download_button(
        f"Download {name}",
        frame.to_csv(index=False).encode("utf-8"),
        file_name=name,
        mime="text/csv",
        key=key,
        icon=":material/download:",
    )


def _percent(value: float | None) -> str:
    return "— (none decided)" if value is None or pd.isna(value) else f"{value:.0%}"


def _seconds(value: float | None) -> str:
    return "— (none decided)" if value is None or pd.isna(value) else f"{value:,.0f} s"
