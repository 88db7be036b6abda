"""The emergency brake on a page: who paused which agent and why, for everyone; the pause and
resume forms for the roles that may (the services check the roles again)."""

from __future__ import annotations

import streamlit as st

from agent.actors import Actor
from agent.release.brake import (
    PAUSE_ROLES,
    RESUME_ROLES,
    PauseState,
    pause_agent,
    paused_agents,
    resume_agent,
)
from console.resources import platform
from console.widgets.feedback import attempt


def paused_banner(actor: Actor, *, only: str | None = None) -> tuple[PauseState, ...]:
    """A warning for each paused agent (or for ``only``); returns the paused agents."""
    states = attempt(lambda: paused_agents(platform(), actor)) or ()
    for state in states:
        if only is not None and state.agent != only:
            continue
        when = f"{state.paused_at:%Y-%m-%d %H:%M} UTC" if state.paused_at else "?"
        st.error(
            f"**{state.agent} is paused** by {state.paused_by} since {when}: {state.reason}. "
            "No run of it starts or goes on; its queued tasks and reviews wait.",
            icon=":material/pause_circle:",
        )
    return states


def brake_panel(actor: Actor, agent: str, paused: bool) -> None:
    """Pause (or resume) ``agent`` with a reason, for the roles that may."""
    may = RESUME_ROLES if paused else PAUSE_ROLES
    if not actor.has_any(may):
        return
    verb = "Resume" if paused else "Pause"
    with st.form(f"brake.{agent}"):
        st.markdown(
            f"**{verb} {agent}.** "
            + (
                "Workers take its waiting work again, each run from where it stopped."
                if paused
                else "The emergency brake: no run of it starts, and a running run stops before "
                "its next call. Nothing is cancelled."
            )
        )
        reason = st.text_input("Reason (audited)", key=f"brake.reason.{agent}")
        submitted = st.form_submit_button(
            verb,
            type="primary",
            icon=":material/play_circle:" if paused else ":material/pause_circle:",
        )
    if not submitted:
        return
    action = resume_agent if paused else pause_agent
    done = attempt(lambda: action(platform(), actor, agent, reason=reason))
    if done is not None:
        st.session_state.pop(f"brake.reason.{agent}", None)
        st.rerun()
