"""Canary releases on a page: the running canary's arms side by side with the guard's verdict,
promote and abort for the roles that may; a start form (through the gate) when none runs; on
the KPI page, every agent's recent canaries with the automatic rollbacks called out. The
services check every role again."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from agent.actors import ROLLBACK_ROLES, VERSION_ROLES, Actor
from agent.errors import GateRefused
from agent.evals.gate import GateVerdict
from agent.release.canary import (
    CanaryInfo,
    abort_canary,
    canary_guard,
    canary_status,
    list_canaries,
    promote_canary,
    start_canary,
)
from agent.release.guard import FIGURES
from console.resources import platform
from console.widgets.feedback import REPORTED, attempt, report

FLASH = "versions.flash"  # the Versions page shows it after the rerun
_STATES = {
    "breach": "✖ breach",
    "ok": "✔ ok",
    "collecting": "… collecting",
    "not guarded": "not guarded",
}


def comparison_frame(comparison: dict[str, Any]) -> pd.DataFrame:
    """The arms figure by figure: values, sample sizes, p-value, threshold, and the verdict."""
    rows = [
        {
            "figure": figure["label"],
            "baseline": _value(figure["key"], figure["baseline"]),
            "candidate": _value(figure["key"], figure["candidate"]),
            "n baseline": figure["baseline_n"],
            "n candidate": figure["candidate_n"],
            "p-value": "—" if figure["p_value"] is None else f"{figure['p_value']:.3g}",
            "worse by more than": figure["threshold_text"],
            "verdict": _STATES.get(figure["state"], figure["state"]),
        }
        for figure in comparison.get("figures", [])
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "figure",
            "baseline",
            "candidate",
            "n baseline",
            "n candidate",
            "p-value",
            "worse by more than",
            "verdict",
        ],
    )


def show_canary(canary: CanaryInfo, *, key: str) -> None:
    """A canary's headline, the guard's verdict and the comparison table."""
    comparison = canary.comparison
    head = (
        f"**Canary #{canary.id}: v{canary.candidate} takes {canary.share}% of new tasks, "
        f"v{canary.baseline} the rest** (started by {canary.started_by} "
        f"{canary.started_at:%Y-%m-%d %H:%M} UTC: {canary.reason})"
    )
    summary = comparison.get("summary", "")
    if canary.running:
        state = str(comparison.get("state", ""))
        box = {"breach": st.error, "collecting": st.info}.get(state, st.success)
        box(f"{head}\n\nGuard: {summary}", icon=":material/science:")
    else:
        ended = (
            f"**{canary.status.value.replace('_', ' ')}** by {canary.ended_by} "
            f"{canary.ended_at:%Y-%m-%d %H:%M} UTC: {canary.end_reason}"
            if canary.ended_at
            else canary.status.value
        )
        box = st.error if canary.automatic else st.info
        box(f"{head}\n\n{ended}", icon=":material/science:")
    if comparison:
        st.dataframe(comparison_frame(comparison), hide_index=True, key=key)
        st.caption(
            f"One-sided tests (Fisher's exact for rates, Mann-Whitney U for cost and latency) at "
            f"significance level {comparison.get('alpha', 0):g} over {len(FIGURES)} figures "
            f"(each at {comparison.get('corrected_alpha', 0):.4g}); a figure needs "
            f"{comparison.get('min_samples', 0)} observations per arm before it can breach."
        )


def canary_panel(
    actor: Actor,
    agent: str,
    numbers: list[int],
    active: int | None,
    verdicts: dict[int, GateVerdict],
    *,
    may_override: bool,
) -> None:
    """The Versions page's canary section for ``agent``."""
    st.subheader("Canary release")
    canary = attempt(lambda: canary_status(platform(), actor, agent))
    if canary is not None and canary.running:
        show_canary(canary, key="versions.canary")
        _end_forms(actor, agent, canary, may_override=may_override)
        return
    if canary is not None:
        show_canary(canary, key="versions.canary_last")
    else:
        st.caption(
            f"{agent} has had no canary release. A canary sends a share of new tasks to a "
            "candidate version and rolls it back by itself if governance health gets "
            "significantly worse."
        )
    _start_form(actor, agent, numbers, active, verdicts, may_override=may_override)


def _start_form(
    actor: Actor,
    agent: str,
    numbers: list[int],
    active: int | None,
    verdicts: dict[int, GateVerdict],
    *,
    may_override: bool,
) -> None:
    if not (actor.has_any(VERSION_ROLES) or may_override):
        return
    candidates = [n for n in numbers if n != active]
    if active is None or not candidates:
        st.caption("A canary needs an active version and another version to try.")
        return
    guard = attempt(lambda: canary_guard(platform(), actor, agent))
    if guard is not None:
        guarded = ", ".join(
            f"{key} {value:g}" for key, value in guard.thresholds.items() if value is not None
        )
        st.caption(
            f"Guard (release settings): {guarded}; at least {guard.min_samples} runs per arm, "
            f"significance level {guard.alpha:g}. Admins change it with "
            f"`steward agents release {agent} --canary-guard KEY=VALUE`."
        )
    gates = ", ".join(
        f"v{n} {'passes' if verdicts[n].allowed else 'refused'}"
        for n in candidates
        if n in verdicts
    )
    if gates:
        st.caption(f"A canary goes through the activation gate: {gates}.")
    with st.form("versions.canary_start"):
        number = st.selectbox("Candidate version", candidates, key="versions.canary_number")
        share = st.slider("Share of new tasks (%)", 1, 50, 10, key="versions.canary_share")
        reason = st.text_input("Reason (audited)", key="versions.canary_reason")
        override = (
            st.checkbox("Override the gate if it refuses", key="versions.canary_override")
            if may_override
            else False
        )
        submitted = st.form_submit_button(
            "Start canary",
            type="primary",
            icon=":material/science:",
            key="versions.canary_start_go",
        )
    if not submitted or number is None:
        return
    try:
        started = start_canary(
            platform(), actor, agent, int(number), share=share, reason=reason, override=override
        )
    except GateRefused as refused:
        report(refused, prefix="No canary started. ")
        return
    except REPORTED as exc:
        report(exc, prefix="No canary started. ")
        return
    st.session_state[FLASH] = (
        f"{agent}: canary #{started.id} started, {started.share}% of new tasks on "
        f"v{started.candidate}."
    )
    st.rerun()


def _end_forms(actor: Actor, agent: str, canary: CanaryInfo, *, may_override: bool) -> None:
    promote, abort = st.columns(2)
    if actor.has_any(VERSION_ROLES) or may_override:
        with promote.form("versions.canary_promote"):
            st.markdown(f"**Promote v{canary.candidate}**: it becomes the active version.")
            reason = st.text_input("Reason (audited)", key="versions.canary_promote_reason")
            override = (
                st.checkbox("Override the gate if it refuses", key="versions.canary_po")
                if may_override
                else False
            )
            if st.form_submit_button(
                "Promote",
                type="primary",
                icon=":material/rocket_launch:",
                key="versions.canary_promote_go",
            ):
                _ended(
                    lambda: promote_canary(
                        platform(), actor, agent, reason=reason, override=override
                    ),
                    f"{agent}: v{canary.candidate} promoted to the active version.",
                )
    if actor.has_any(ROLLBACK_ROLES):
        with abort.form("versions.canary_abort"):
            st.markdown(f"**Abort**: every new task runs on v{canary.baseline} again.")
            reason = st.text_input("Reason (audited)", key="versions.canary_abort_reason")
            if st.form_submit_button(
                "Abort canary", icon=":material/cancel:", key="versions.canary_abort_go"
            ):
                _ended(
                    lambda: abort_canary(platform(), actor, agent, reason=reason),
                    f"{agent}: canary of v{canary.candidate} aborted.",
                )


def _ended(action: Any, message: str) -> None:
    done = attempt(action)
    if done is not None:
        st.session_state[FLASH] = message
        st.rerun()


def canaries_section(actor: Actor) -> None:
    """The KPI page's list: recent canaries of every agent, running ones compared, automatic
    rollbacks called out."""
    st.subheader("Canary releases")
    canaries = attempt(lambda: list_canaries(platform(), actor, limit=20))
    if canaries is None:
        return
    if not canaries:
        st.caption(
            "No canary release yet. Engineers start one on the Versions page or with "
            "`steward versions canary AGENT N --share 10 --reason R`."
        )
        return
    for canary in canaries:
        if canary.automatic:
            st.error(
                f"**{canary.agent} v{canary.candidate} was rolled back automatically** "
                f"{canary.ended_at:%Y-%m-%d %H:%M} UTC: {canary.end_reason}",
                icon=":material/history:",
            )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "canary": c.id,
                    "agent": c.agent,
                    "candidate": f"v{c.candidate}",
                    "baseline": f"v{c.baseline}",
                    "share": f"{c.share}%",
                    "status": c.status.value.replace("_", " ")
                    + (" (automatic)" if c.automatic else ""),
                    "guard": c.comparison.get("summary", ""),
                    "started": c.started_at,
                    "ended": c.ended_at,
                    "ended by": c.ended_by or "",
                }
                for c in canaries
            ]
        ),
        hide_index=True,
        key="kpis.canaries",
    )
    for canary in canaries:
        if canary.running:
            with st.expander(f"{canary.agent}: canary of v{canary.candidate}, live comparison"):
                show_canary(canary, key=f"kpis.canary.{canary.id}")


def _value(key: str, value: float | None) -> str:
    if value is None:
        return "— (no observation yet)"
    if key == "cost_per_task":
        return f"${value:,.4f}"
    if key == "latency_p95":
        return f"{value:,.0f} ms"
    return f"{value:.1%}"
