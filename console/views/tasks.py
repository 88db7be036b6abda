"""Tasks: submit work to an agent, and watch the queued and running work and the workers."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import Forbidden, ServiceError
from agent.reads.tasks import STALE_AFTER_S, submission_agents, work_overview
from agent.tasks import submit_task
from console.components.data import forget_lists
from console.components.feedback import describe, one_sentence, sentence
from console.components.formatting import ago, duration
from console.resources import platform
from console.session import require_user
from storage.enums import TaskStatus
from storage.errors import StorageError
from storage.types import utcnow

REFRESH_S = 5
EXAMPLE = '{"intent": "order_status", "customer_id": "C-1001", "order_id": "O-5001"}'

st.title("Tasks")
actor = require_user()

st.subheader("Submit a task")
agents: tuple[str, ...] = ()
try:
    agents = submission_agents(platform(), actor)
except Forbidden as exc:
    st.caption(sentence(str(exc)))
except (ServiceError, StorageError, SQLAlchemyError) as exc:
    st.error(describe(exc))
else:
    if not agents:
        st.info("No agent has an active version to take work; an engineer activates one first.")

if agents:
    with st.form("tasks.form"):
        agent = st.selectbox("Agent", agents, key="tasks.agent")
        text = st.text_area(
            "Task input (a JSON object)", key="tasks.input", height=150, placeholder=EXAMPLE
        )
        priority = st.number_input(
            "Priority (higher runs first)", min_value=0, max_value=100, step=1, key="tasks.priority"
        )
        submitted = st.form_submit_button("Submit", key="tasks.submit", type="primary")
    if submitted:
        try:
            task_id = submit_task(
                platform(), actor, str(agent), text or "", priority=int(priority), source="console"
            )
        except (ServiceError, StorageError, SQLAlchemyError) as exc:
            st.error(describe(exc))
        else:
            forget_lists()
            st.success(f"Task {task_id} is queued for {agent}; a worker picks it up next.")


@st.fragment(run_every=REFRESH_S)
def work_panel() -> None:
    """Task counts, worker heartbeats and the work in flight, refreshed live."""
    with one_sentence():
        overview = work_overview(platform(), actor)
    now = utcnow()
    st.subheader("Work in flight")
    counts = overview.counts
    for column, status in zip(
        st.columns(4),
        (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.WAITING_REVIEW, TaskStatus.SUCCEEDED),
        strict=True,
    ):
        column.metric(status.value.replace("_", " ").capitalize(), counts.get(status, 0))

    st.markdown("**Workers**")
    if not overview.workers:
        st.warning("No worker is running: queued work waits until one starts (`steward worker`).")
    else:
        if not overview.alive:
            st.warning(
                f"No worker has reported in the last {duration(STALE_AFTER_S)}: queued work "
                "waits until one is back."
            )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "worker": w.worker.id,
                        "host": w.worker.hostname,
                        "embedded": w.worker.embedded,
                        "last heartbeat": ago(w.worker.heartbeat_at, now),
                        "stale": w.stale,
                        "runs processed": w.worker.runs_processed,
                    }
                    for w in overview.workers
                ]
            ),
            hide_index=True,
            key="tasks.workers",
        )

    st.markdown("**Queued, running and waiting tasks**")
    if not overview.items:
        st.info("Nothing is queued or running: submit a task with the form above.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "task": i.task_id,
                    "agent": i.agent,
                    "status": i.status.value,
                    "priority": i.priority,
                    "run": f"/run?run={i.run_id}" if i.run_id else None,
                    "run status": i.run_status.value if i.run_status else "",
                    "steps": i.steps,
                    "lease": i.lease_owner or "",
                    "heartbeat": ago(i.heartbeat_at, now) if i.heartbeat_at else "",
                    "submitted by": i.submitted_by,
                    "submitted": ago(i.created_at, now),
                }
                for i in overview.items
            ]
        ),
        hide_index=True,
        key="tasks.work",
        column_config={
            "run": st.column_config.LinkColumn("run", display_text=r"run=(\d+)"),
        },
    )
    if overview.work.has_more:
        st.caption(
            f"The newest {len(overview.items):,} of {overview.work.total:,} tasks not finished."
        )


work_panel()
