"""Tables a person clicks: a click on a row opens what the row stands for (a run, a review).

``st.dataframe``'s single-row selection keeps the clicked row selected in its widget state, so
coming back to the page would open the same row again. The widget's key therefore carries a
counter that moves on with every click: the next visit draws a fresh table with nothing
selected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st


def table_key(key: str) -> str:
    """The current widget key of the clickable table ``key`` (tests select rows through it)."""
    return f"{key}.{st.session_state.setdefault(f'{key}.clicks', 0)}"


def clicked_row(
    frame: pd.DataFrame, *, key: str, column_config: Mapping[str, Any] | None = None
) -> int | None:
    """Draw ``frame``; the position of the row just clicked, or None."""
    event = st.dataframe(
        frame,
        hide_index=True,
        key=table_key(key),
        on_select="rerun",
        selection_mode="single-row",
        column_config=dict(column_config or {}),
    )
    selection: Any = getattr(event, "selection", None)
    if selection is None and isinstance(event, Mapping):
        selection = event.get("selection")
    rows = list((selection or {}).get("rows") or [])
    if not rows:
        return None
    st.session_state[f"{key}.clicks"] += 1
    return int(rows[0])
