"""Notification delivery on the System status page: each channel's outbox, and what failed."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from agent.actors import Actor
from agent.notify import notification_status
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
        st.caption("Not configured: set STEWARD_NOTIFY_FILE (see the README) to send them.")
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
