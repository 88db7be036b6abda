"""System status: where the data lives, its schema revision, table sizes and worker heartbeats."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from console.resources import engine
from storage.engine import read_session
from storage.errors import StorageError
from storage.queries.system import system_status
from storage.types import utcnow

st.title("System status")

try:
    with read_session(engine()) as session:
        status = system_status(session=session)
except StorageError as exc:
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
    st.info("No worker has reported a heartbeat.")

st.subheader("Tables")
st.dataframe(
    pd.DataFrame(sorted(status.row_counts.items()), columns=["table", "rows"]),
    hide_index=True,
    key="status.tables",
)
