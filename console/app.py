"""The console's router: builds the pages from ``console/views`` and runs the chosen one."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from console.resources import embedded_worker

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="Steward", page_icon=":material/shield_person:", layout="wide")
embedded_worker()

pages = [
    st.Page(
        VIEWS / "status.py",
        title="System status",
        icon=":material/monitor_heart:",
        url_path="status",
        default=True,
    ),
]
st.navigation(pages).run()
