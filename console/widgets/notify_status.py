"""Notification delivery on the System status page: each channel's outbox, what failed, and for
admins the form that edits the channels and routes."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from agent.actors import USER_ADMIN_ROLES, Actor
from agent.notify import notification_status, save_settings, saved_settings
from console.components.formatting import when
from console.resources import platform
from console.widgets.feedback import attempt


def notification_panel(actor: Actor) -> None:
    """The ``Notifications`` section: configured or not, and per channel what waits or failed."""
    st.subheader("Notifications")
    status = attempt(lambda: notification_status(platform(), actor))
    if status is None:
        return
    if status.problem:
        st.error(status.problem)
    elif not status.configured:
        st.caption(
            "Not configured: an admin saves channels and routes below, or set "
            "STEWARD_NOTIFY_FILE (see the README)."
        )
    if actor.has_any(USER_ADMIN_ROLES):
        _settings_form(actor)
    if status.failing:
        st.warning(
            "Some messages could not be delivered: they are retried with backoff (failed ones "
            "gave up after about ten hours). The last error of each channel is below."
        )
    if not status.channels:
        if status.configured:
            st.caption("Nothing was sent yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "channel": c.channel,
                    "sent": c.sent,
                    "pending": c.pending,
                    "retrying": c.retrying,
                    "failed": c.failed,
                    "oldest pending": when(c.oldest_pending),
                    "last error": c.last_error or "",
                }
                for c in status.channels
            ]
        ),
        hide_index=True,
        key="status.notifications",
    )


def _settings_form(actor: Actor) -> None:
    saved = attempt(lambda: saved_settings(platform(), actor))
    if saved is None:
        return
    with st.expander("Channels and routes (admins)"):
        if saved.file is not None:
            st.caption(
                f"STEWARD_NOTIFY_FILE ({saved.file}) is set and is in force; what is saved "
                "here applies once it is unset."
            )
        if saved.updated_by:
            st.caption(f"Saved by {saved.updated_by} at {when(saved.updated_at)}.")
        with st.form("status.notify"):
            text = st.text_area(
                "Settings (YAML)",
                value=saved.source_yaml,
                height=240,
                key="status.notify.yaml",
                help="channels and routes as in the README; write secrets as ${VARIABLE}.",
            )
            submitted = st.form_submit_button("Save", key="status.notify.save")
        if submitted:
            config = attempt(lambda: save_settings(platform(), actor, text))
            if config is not None:
                st.success(
                    f"Saved: {len(config.channels)} channel(s), {len(config.routes)} route(s)."
                )
            elif not text.strip():
                st.success("Saved: no channel; nothing is sent.")
