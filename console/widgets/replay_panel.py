"""Policy replay next to the version diff: what a version's policy would have decided on the
agent's recorded decisions, with the runs behind each flip one click away."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pandas as pd
import streamlit as st

from agent.actors import Actor
from agent.release.replay import REPLAY_ROLES, list_replays, replay_policy
from agent.release.report import ReplayReport
from agent.release.shadow import shadow_report
from agent.release.suggest import DEFAULT_MIN_DECISIONS, DEFAULT_MIN_SHARE, policy_suggestions
from console.components.formatting import option_label
from console.resources import platform
from console.widgets.feedback import attempt

SHOWN = "versions.replay_shown"
SHADOW_DAYS = 7


def replay_panel(actor: Actor, agent: str, numbers: list[int], default: int) -> None:
    """Replay a chosen version's policy (engineers and managers) and read saved replays."""
    st.subheader("Replay a policy on history")
    st.caption(
        "Evaluates a version's rules on every decision the agent's policy took in the window, "
        "from stored rows alone: no tool, fact provider or model is called."
    )
    left, right = st.columns([2, 1])
    with left:
        candidate = st.selectbox(
            "Version whose policy to replay",
            numbers,
            index=numbers.index(default) if default in numbers else 0,
            key="versions.replay_candidate",
            format_func=partial(option_label, {n: f"v{n}" for n in numbers}),
        )
    with right:
        days = st.number_input(
            "Days back", min_value=1, max_value=365, value=30, key="versions.replay_days"
        )
    if actor.has_any(REPLAY_ROLES) and st.button(
        "Replay", key="versions.replay", icon=":material/history:"
    ):
        done = attempt(
            lambda: replay_policy(
                platform(),
                actor,
                agent,
                candidate_version=int(candidate),
                since=timedelta(days=int(days)),
            )
        )
        if done is not None:
            st.session_state[SHOWN] = done.id
    saved = attempt(lambda: list_replays(platform(), actor, agent, version=int(candidate)))
    if not saved:
        if saved is not None:
            st.caption(f"v{candidate} has not been replayed yet.")
        return
    wanted = st.session_state.get(SHOWN)
    shown = next((r for r in saved if r.id == wanted), saved[0])
    render_report(shown)
    if len(saved) > 1:
        st.caption(f"{len(saved)} saved replays of v{candidate}; the newest is shown.")


def _runs(run_ids: tuple[int, ...] | list[int]) -> str:
    return ", ".join(f"[run {r}](/runs?run={r})" for r in run_ids)


def render_report(report: ReplayReport) -> None:
    """One saved replay: its figures, flips, contradicted decisions and what it cannot replay."""
    created = f"{report.created_at:%Y-%m-%d %H:%M} UTC" if report.created_at else ""
    st.markdown(
        f"**Replay #{report.id}** of {report.candidate}, by {report.created_by} {created}: "
        f"{report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}."
    )
    queue = report.queue
    columns = st.columns(4)
    columns[0].metric("Decisions replayed", f"{report.replayed:,} of {report.decisions:,}")
    columns[1].metric("Would flip", f"{report.flipped:,}")
    columns[2].metric("Reviews saved a day", queue.get("reviews_saved_per_day"))
    columns[3].metric("Human decisions contradicted", len(report.contradictions))
    st.caption(
        f"Escalations a day: {queue.get('escalations_per_day')} today, "
        f"{queue.get('projected_escalations_per_day')} under v{report.candidate_version}; "
        f"people decided {queue.get('decisions_per_day')} a day, median wait "
        f"{queue.get('median_minutes_to_decide')} min."
    )
    if report.flips:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "from": f.from_effect,
                        "to": f.to_effect,
                        "rule": f.rule_id or "default",
                        "tool": f.tool,
                        "decided on": f"v{f.version}",
                        "decisions": f.count,
                    }
                    for f in report.flips
                ]
            ),
            hide_index=True,
            key=f"versions.replay_flips.{report.id}",
        )
        st.markdown(
            "\n".join(
                f"- {f.from_effect} → {f.to_effect} ({f.tool}): {_runs(f.runs)}"
                for f in report.flips
            )
        )
    else:
        st.caption("No decision would change.")
    if report.contradictions:
        st.warning(
            "Past human decisions it goes against:\n"
            + "\n".join(
                f"- {c.person} {c.decided} {c.tool} in [run {c.run_id}](/runs?run={c.run_id}); "
                f"v{report.candidate_version} would {c.candidate} ({c.rule_id or 'default'})"
                for c in report.contradictions
            ),
            icon=":material/person_alert:",
        )
    if report.executed_now_denied:
        st.error(
            "Executed calls it would now deny:\n"
            + "\n".join(
                f"- {c['tool']} in [run {c['run_id']}](/runs?run={c['run_id']}) "
                f"({c['rule_id'] or 'default'})"
                for c in report.executed_now_denied
            ),
            icon=":material/block:",
        )
    for reason, count in sorted(report.undecidable.items()):
        st.caption(f"Not replayed ({count}): {reason}.")


def shadow_panel(actor: Actor, agent: str, version: int | None) -> None:
    """What the active version's shadow rules would have changed in the last week."""
    if version is None:
        return
    report = attempt(
        lambda: shadow_report(
            platform(), actor, agent, version=version, since=timedelta(days=SHADOW_DAYS)
        )
    )
    if report is None or not report.decisions:
        return  # the version has no shadow rule, or none has met a call yet
    st.subheader(f"Shadow rules of v{version}")
    st.caption(
        f"Evaluated on live traffic over the last {SHADOW_DAYS} days and recorded, never "
        f"enforced: {report.decisions:,} decisions, {report.flipped:,} of which they would "
        "change. Promoting them is a new version without `shadow: true`."
    )
    if report.flips:
        st.markdown(
            "\n".join(
                f"- {f.from_effect} → {f.to_effect} by `{f.rule_id}` on {f.tool}: {f.count} "
                f"({_runs(f.runs)})"
                for f in report.flips
            )
        )
    st.caption(
        "Matches: "
        + ", ".join(f"`{rule}` {count}" for rule, count in sorted(report.rule_matches.items()))
    )


def suggestions_panel(actor: Actor, agent: str) -> None:
    """Escalation rules people nearly always approve, with a bound checked by replay (shown to
    engineers and managers; a proposal only: nothing changes without a new version)."""
    if not actor.has_any(REPLAY_ROLES):
        return
    suggestions = attempt(lambda: policy_suggestions(platform(), actor, agent))
    if not suggestions:
        return
    st.subheader("Policy suggestions")
    st.caption(
        f"Escalation rules people approved at least {DEFAULT_MIN_SHARE:.0%} of the time over at "
        f"least {DEFAULT_MIN_DECISIONS} decisions in the last 30 days; a bound is proposed only "
        "if replaying it allows no call a person rejected."
    )
    for s in suggestions:
        head = f"**{s.rule_id}** ({s.tool}): approved {s.approved} of {s.decisions}."
        if s.proposal and s.candidate_yaml:
            st.markdown(
                f"{head} Suggest: {s.proposal}; it saves {s.reviews_saved} reviews "
                f"({s.reviews_saved_per_day} a day)."
            )
            with st.expander(f"The proposal as a version ({s.rule_id})"):
                st.code(s.candidate_yaml, language="yaml")
        else:
            st.markdown(f"{head} No bound to move without allowing a rejected call.")
