"""Versions for engineers: list, compare, create from YAML, activate, roll back; managers read.

Each version shows the evaluation the activation gate uses per required suite and the gate's
verdict; the verdict on the version chosen for activation sits next to Activate, with the failing
cases when it refuses. Roles the agent's release settings name get an override form (reason
required); the check itself lives in ``agent.versions``. Rollback is never gated.

Activation and rollback ask for confirmation and a reason in a dialog. The action waiting for
confirmation is kept in session state as plain data, so the dialog survives the reruns its
own widgets cause, and is forgotten when it is dismissed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from agent.actors import KPI_ROLES, ROLLBACK_ROLES, VERSION_ROLES, Actor
from agent.errors import GateRefused, VersionSpecError
from agent.evals.agreement import AgreementScore, agreement_by_version, measure_agreement
from agent.evals.gate import GateVerdict, gate_verdicts
from agent.reads.paging import MAX_LIMIT
from agent.versions import (
    VersionInfo,
    activate_version,
    create_version,
    deployment_history,
    diff_versions,
    list_agents,
    list_versions,
    pinned_reviews,
    release_settings,
    rollback,
    rollback_target,
    show_version,
)
from console.resources import platform
from console.session import require_user
from console.widgets.brake import brake_panel, paused_banner
from console.widgets.canary_panel import canary_panel
from console.widgets.choice import remembered_choice
from console.widgets.eval_alert import scheduled_evaluation_alert
from console.widgets.feedback import REPORTED, attempt, report
from console.widgets.replay_panel import replay_panel, shadow_panel, suggestions_panel
from console.widgets.source import show_line
from console.widgets.version_diff import render_diff

CONFIRM = "versions.confirm"
FLASH = "versions.flash"


def forget_confirmation() -> None:
    st.session_state.pop(CONFIRM, None)


@st.dialog("Change the active version", on_dismiss=forget_confirmation)
def confirm_change(actor: Actor, pending: dict[str, Any]) -> None:
    """Ask for a reason, then activate or roll back as ``pending`` describes."""
    agent, number, current = pending["agent"], pending["number"], pending["current"]
    verb = "Roll back" if pending["action"] == "rollback" else "Activate"
    before = f"v{current}" if current else "no active version"
    st.markdown(
        f"**{verb} {agent}** from {before} to **v{number}**? New runs start on v{number} "
        "at once; runs already started, and their open reviews, keep the version they pinned."
    )
    reason = st.text_input("Reason (recorded with the change)", key="versions.reason")
    left, right = st.columns(2)
    if left.button(verb, type="primary", key="versions.confirm_yes"):

        def change() -> str:
            if pending["action"] == "rollback":
                done = rollback(platform(), actor, agent, reason=reason)
            else:
                done = activate_version(platform(), actor, agent, number, reason=reason)
            before = f"v{done.from_number}" if done.from_number else "no version"
            verb = "rolled back" if pending["action"] == "rollback" else "activated"
            return f"{agent}: {verb} {before} → v{done.to_number}."

        message: str | None = None
        try:
            message = change()
        except GateRefused as refused:
            report(refused, prefix="Not activated. ")
            st.markdown(
                "Failing cases: " + ", ".join(f"`{case}`" for case in refused.failing_cases)
                if refused.failing_cases
                else "No failing case: a required suite has no evaluation of this version."
            )
        except REPORTED as exc:
            report(exc)
        if message is not None:
            forget_confirmation()
            st.session_state.pop("versions.reason", None)
            st.session_state[FLASH] = message
            st.rerun()
    if right.button("Cancel", key="versions.confirm_no"):
        forget_confirmation()
        st.rerun()


def versions_frame(
    versions: tuple[VersionInfo, ...],
    verdicts: dict[int, GateVerdict],
    agreement: dict[int, AgreementScore] | None = None,
) -> pd.DataFrame:
    """One row per version; with the gate's verdict, per required suite the evaluation of that
    exact version the gate uses, and its latest reviewer agreement."""
    agreement = agreement or {}
    suites = sorted({s.suite for verdict in verdicts.values() for s in verdict.suites})
    rows = []
    for v in versions:
        verdict = verdicts.get(v.number)
        row: dict[str, Any] = {
            "version": v.number,
            "active": "● active" if v.is_active else "",
            "gate": gate_label(verdict) if verdict else "",
        }
        by_suite = {s.suite: s for s in verdict.suites} if verdict else {}
        for name in suites:
            suite = by_suite.get(name)
            row[f"suite {name}"] = (
                f"#{suite.evaluation_id} {suite.evaluation_status} {suite.pass_rate:.0%}"
                if suite and suite.evaluation_id is not None and suite.pass_rate is not None
                else "not evaluated"
            )
        score = agreement.get(v.number)
        row["reviewer agreement"] = (
            f"{score.score:.0%} of {score.cases}"
            if score is not None and score.score is not None
            else "not measured"
        )
        row.update(
            {
                "hash": v.short_hash,
                "note": v.note,
                "created by": v.created_by,
                "created": v.created_at,
            }
        )
        rows.append(row)
    columns = ["version", "active", "gate", *(f"suite {n}" for n in suites), "reviewer agreement"]
    return pd.DataFrame(rows, columns=[*columns, "hash", "note", "created by", "created"])


def gate_label(verdict: GateVerdict) -> str:
    """The gate's verdict in a few words, for a table cell."""
    if verdict.passed:
        return "passes" if verdict.suites else "passes (no required suite)"
    if verdict.previously_active:
        return "not gated (active before)"
    return "refused"


def show_verdict(verdict: GateVerdict) -> None:
    """The gate's verdict on one version, with its reasons, evaluations and failing cases."""
    reasons = "\n".join(f"- {reason}" for reason in verdict.reasons)
    links = ", ".join(
        f"[{s.suite} #{s.evaluation_id}](/evaluations?evaluation={s.evaluation_id})"
        for s in verdict.suites
        if s.evaluation_id is not None
    )
    text = f"**Gate on v{verdict.version}: {gate_label(verdict)}.**\n\n{reasons}"
    if links:
        text += f"\n\nEvaluations: {links}"
    if verdict.allowed:
        st.info(text, icon=":material/verified:")
        return
    if verdict.failing_cases:
        text += "\n\nFailing cases: " + ", ".join(f"`{c}`" for c in verdict.failing_cases)
    st.error(text, icon=":material/block:")


def override_panel(actor: Actor, agent: str, verdict: GateVerdict) -> None:
    """Activate a version the gate refuses, with a reason (for the roles the release settings
    name; the service checks them again)."""
    with st.form("versions.override_form"):
        st.markdown(
            f"**Override the gate for v{verdict.version}.** The reason, the verdict and the "
            "evaluations overridden go to the audit log."
        )
        reason = st.text_input("Reason for the override", key="versions.override_reason")
        submitted = st.form_submit_button(
            "Override and activate", type="primary", key="versions.override"
        )
    if not submitted:
        return
    done = attempt(
        lambda: activate_version(
            platform(), actor, agent, verdict.version, reason=reason, override=True
        )
    )
    if done is not None:
        st.session_state[FLASH] = (
            f"{agent}: activated v{done.to_number}, overriding the gate "
            f"({', '.join(verdict.failing_cases) or 'no evaluation'})."
        )
        st.rerun()


def load_yaml(actor: Actor, agent: str, number: int) -> None:
    """Button callback: put a version's YAML in the editor (before the editor is drawn)."""

    text = attempt(lambda: show_version(platform(), actor, agent, number).source_yaml)
    if text is not None:
        st.session_state["versions.yaml"] = text


def create_panel(actor: Actor, agent: str, numbers: list[int]) -> None:
    st.subheader("New version from YAML")
    if numbers:
        st.button(
            f"Start from v{numbers[0]}",
            key="versions.load_yaml",
            on_click=load_yaml,
            args=(actor, agent, numbers[0]),
            icon=":material/content_copy:",
        )
    with st.form("versions.create_form"):
        text = st.text_area("Version YAML", height=360, key="versions.yaml")
        note = st.text_input("Note: what changed and why", key="versions.note")
        submitted = st.form_submit_button(
            "Validate and store", type="primary", key="versions.create"
        )
    if not submitted:
        return
    try:
        created = create_version(platform(), actor, agent, text, note=note)
    except VersionSpecError as exc:
        report(exc, prefix="Nothing was stored. ")
        show_line(text, exc.line)
        return
    except REPORTED as exc:
        report(exc, prefix="Nothing was stored. ")
        return
    st.session_state[FLASH] = (
        f"Stored {created.agent} version {created.number} (hash {created.short_hash}); "
        "it is not active until you activate it."
    )
    st.rerun()


st.title("Versions")
actor = require_user()
can_change = actor.has_any(VERSION_ROLES)
flash = st.session_state.pop(FLASH, None)
if flash:
    st.success(flash, icon=":material/check_circle:")

listed = attempt(lambda: list_agents(platform(), actor, limit=MAX_LIMIT))
if listed is None or not listed.items:
    if listed is not None:
        st.info("No agents yet: create one with `steward agents create NAME`.")
    st.stop()
agent = remembered_choice("Agent", [a.name for a in listed.items], "versions.agent")
if listed.has_more:
    st.caption(f"The first {len(listed.items):,} of {listed.total:,} agents, by name.")
if not can_change:
    st.caption(
        "Engineers create and activate versions; operators and engineers roll back to the "
        "version active before and, with managers, pause an agent."
    )

page = attempt(lambda: list_versions(platform(), actor, agent, limit=MAX_LIMIT))
if page is None:
    st.stop()
versions = page.items
numbers = [v.number for v in versions]
active = next((v.number for v in versions if v.is_active), None)
verdicts = attempt(lambda: gate_verdicts(platform(), actor, agent, numbers)) or {}
settings = attempt(lambda: release_settings(platform(), actor, agent))
may_override = settings is not None and settings.allows_override(actor)
if actor.has_any(KPI_ROLES):
    scheduled_evaluation_alert(actor)
agreement = attempt(lambda: agreement_by_version(platform(), actor, agent)) or {}
paused = any(state.agent == agent for state in paused_banner(actor, only=agent))
st.dataframe(versions_frame(versions, verdicts, agreement), hide_index=True, key="versions.list")
st.caption(
    "Reviewer agreement: the share of the latest reviewed production runs a version agrees "
    "with when it runs the same inputs in a sandbox (`steward evals agreement`)."
)
if page.has_more:
    st.caption(f"The newest {len(versions):,} of {page.total:,} versions.")

can_roll_back = actor.has_any(ROLLBACK_ROLES)
brake_panel(actor, agent, paused)
if (can_change or may_override or can_roll_back) and numbers:
    target = attempt(lambda: rollback_target(platform(), actor, agent))
    left, right = st.columns(2)
    with left:
        others = [n for n in numbers if n != active] or numbers
        chosen = remembered_choice("Version to activate", others, "versions.activate_number")
        chosen_verdict = verdicts.get(int(chosen))
        if chosen_verdict is not None:
            show_verdict(chosen_verdict)
        if can_change and st.button(
            "Measure reviewer agreement",
            key="versions.agreement",
            icon=":material/handshake:",
            help="Replay the latest reviewed runs on this version in a sandbox",
        ):
            measured = attempt(
                lambda: measure_agreement(platform(), actor, agent, version=int(chosen))
            )
            if measured is not None:
                cases = measured.passed + measured.failed
                st.session_state[FLASH] = (
                    f"{agent} v{measured.version} agrees with {measured.passed} of {cases} "
                    f"reviewed runs (evaluation #{measured.id})."
                )
                st.rerun()
        if can_change and st.button(
            "Activate…", key="versions.activate", icon=":material/rocket_launch:"
        ):
            st.session_state[CONFIRM] = {
                "action": "activate",
                "agent": agent,
                "number": int(chosen),
                "current": active,
            }
        if (
            may_override
            and chosen_verdict is not None
            and not chosen_verdict.allowed
            and int(chosen) != active
        ):
            override_panel(actor, agent, chosen_verdict)
    with right:
        label = f"Roll back to v{target.number}…" if target else "Roll back…"
        st.caption("Return to the version that was active before the current one (never gated).")
        if can_roll_back and st.button(
            label, key="versions.rollback", disabled=target is None, icon=":material/undo:"
        ):
            assert target is not None  # the button is disabled otherwise
            st.session_state[CONFIRM] = {
                "action": "rollback",
                "agent": agent,
                "number": target.number,
                "current": active,
            }
    pending = st.session_state.get(CONFIRM)
    if isinstance(pending, dict) and pending.get("agent") == agent:
        confirm_change(actor, pending)

if numbers:
    canary_panel(actor, agent, numbers, active, verdicts, may_override=may_override)

st.subheader("Compare two versions")
if len(numbers) < 2:
    st.caption("There is only one version.")
else:
    left, right = st.columns(2)
    # Newest first: by default, what the newest version changed from the one before it.
    with left:
        a = remembered_choice("From", numbers, "versions.diff_a", default=numbers[1])
    with right:
        b = remembered_choice("To", numbers, "versions.diff_b", default=numbers[0])
    if a == b:
        st.caption("Pick two different versions.")
    else:
        diff = attempt(lambda: diff_versions(platform(), actor, agent, a, b))
        if diff is not None:
            render_diff(diff)
if numbers:
    shadow_panel(actor, agent, active)
    suggestions_panel(actor, agent)
    replay_panel(actor, agent, numbers, default=int(b) if len(numbers) >= 2 else numbers[0])

if can_change:
    create_panel(actor, agent, numbers)

st.subheader("Deployment history")
history = attempt(lambda: deployment_history(platform(), actor, agent))
if history is not None and history.items:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "when": d.created_at,
                    "action": d.action.value,
                    "from": f"v{d.from_number}" if d.from_number else "none",
                    "to": f"v{d.to_number}",
                    "by": d.actor,
                    "reason": d.reason,
                }
                for d in history.items
            ]
        ),
        hide_index=True,
        key="versions.history",
    )
    if history.has_more:
        st.caption(f"The latest {len(history.items):,} of {history.total:,} changes.")
elif history is not None:
    st.caption(f"{agent} has never been activated.")

st.subheader("Open reviews pinned to older versions")
pinned = attempt(lambda: pinned_reviews(platform(), actor, agent))
if pinned is not None:
    if not pinned.total:
        st.caption("None: every open review belongs to the active version.")
    else:
        counts = ", ".join(f"v{n}: {count}" for n, count in pinned.by_version.items())
        st.warning(
            f"{pinned.total} open review(s) still run on older versions ({counts}); their runs "
            "resume on those versions once decided."
        )
        st.dataframe(
            pd.DataFrame([vars(review) for review in pinned.reviews.items]),
            hide_index=True,
            key="versions.pinned",
        )
        if pinned.reviews.has_more:
            st.caption(f"The oldest {len(pinned.reviews.items):,} of {pinned.total:,}.")
