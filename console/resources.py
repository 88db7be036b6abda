"""Process-wide resources of the console, created once per server process and shared by sessions."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from storage.engine import create_engine, database_url


def engine() -> Engine:
    """The engine for the current ``STEWARD_DATABASE_URL``, shared by every browser session."""
    return _engine_for(database_url().render_as_string(hide_password=False))


@st.cache_resource(on_release=lambda engine: engine.dispose(), show_spinner=False)
def _engine_for(url: str) -> Engine:
    # Keyed by URL so that a changed configuration (or a test's database) gets its own engine.
    return create_engine(url)
