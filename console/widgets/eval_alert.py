"""The alert a failing scheduled evaluation raises on the KPI and Versions pages."""

from __future__ import annotations

import streamlit as st

from agent.actors import Actor
from agent.evals.alerts import FailingSchedule, failing_schedules
from console.resources import platform
from console.widgets.feedback import attempt


def scheduled_evaluation_alert(actor: Actor) -> tuple[FailingSchedule, ...]:
    """Show, when there are any, the suites whose latest scheduled evaluation of the active
    version failed or errored, with a link to the latest of them on the Evaluations page.

    Returns:
        What was shown (empty when nothing is failing, or when it could not be read: that is
        said on the page in one sentence).
    """
    failing = attempt(lambda: failing_schedules(platform(), actor)) or ()
    if not failing:
        return ()
    count = len(failing)
    heading = (
        "A scheduled evaluation of an active version is failing"
        if count == 1
        else f"{count} scheduled evaluations of active versions are failing"
    )
    st.error(
        f"**{heading}**: the agent may have drifted (a model behind an endpoint, say).\n\n"
        + "\n".join(f"- {item.sentence()}" for item in failing),
        icon=":material/notification_important:",
    )
    latest = failing[0]
    st.page_link(
        "views/evaluations.py",
        label=f"Open evaluation {latest.evaluation_id} on the Evaluations page",
        icon=":material/fact_check:",
        query_params={"evaluation": str(latest.evaluation_id)},
    )
    return failing
