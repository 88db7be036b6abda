"""System status: where the data lives, its schema revision, table sizes and worker heartbeats."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from agent.errors import ServiceError
from agent.reads.system import status as system_status
from console.resources import platform
from console.session import require_user
from console.widgets.notify_status import notification_panel
from storage.errors import StorageError
from storage.types import utcnow

st.title("System status")
actor = require_user()

try:
    status = system_status(platform(), actor)
except (ServiceError, StorageError) as exc:
    st.error(str(exc))
    st.stop()
except Exception as exc:  # noqa: BLE001 - any database failure becomes one sentence
    st.error(f"The database cannot be read: {type(exc).__name__}. Check STEWARD_DATABASE_URL.")
    st.stop()

left, middle, right = st.columns(3)
left.metric("Database", status.dialect)
middle.metric("Schema revision", status.revision or "none")
right.metric("Rows", f"{sum(status.row_counts.values()):,}")
st.caption(f"Database URL: `{status.database_url}` · durability: `{status.durability}`")
if not status.up_to_date:
    st.warning(
        f"The schema is at {status.revision or 'nothing'}, the code expects {status.head}. "
        "Run `steward db upgrade`."
    )

st.subheader("Workers")
if status.workers:
    now = utcnow()
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "worker": w.id,
                    "host": w.hostname,
                    "pid": w.pid,
                    "embedded": w.embedded,
                    "last heartbeat (s ago)": round((now - w.heartbeat_at).total_seconds(), 1),
                    "runs processed": w.runs_processed,
                }
                for w in status.workers
            ]
        ),
        hide_index=True,
        key="status.workers",
    )
else:
    st.info(
        "No worker has reported a heartbeat: start one with `steward worker`, or serve the "
        "console with `make run` (its embedded worker starts with it)."
    )

st.subheader("Tables")
st.caption("Production rows; the rows of evaluation runs are counted apart.")
st.dataframe(
    pd.DataFrame(
        [
            (table, rows, status.evaluation_rows.get(table, 0))
            for table, rows in sorted(status.row_counts.items())
        ],
        columns=["table", "rows", "evaluation rows"],
    ),
    hide_index=True,
    key="status.tables",
)

notification_panel(actor)
