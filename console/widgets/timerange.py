"""A time range picker shared by the KPI and audit views: presets, or custom dates (UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from storage.types import utcnow

CUSTOM = "Custom dates"
PRESETS: dict[str, timedelta | None] = {
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "Last 90 days": timedelta(days=90),
    "All time": None,
}


@dataclass(frozen=True)
class TimeRange:
    """``[since, until)`` in aware UTC; None on either side is unbounded."""

    since: datetime | None
    until: datetime | None
    label: str


def time_range_picker(prefix: str, *, default: str = "Last 7 days") -> TimeRange:
    """Render the range controls under the keys ``{prefix}.range`` and ``{prefix}.dates``.

    Preset ranges end now and start at a whole minute, so the value (and any cache keyed on
    it) stays the same across reruns within that minute.
    """
    range_key, dates_key = f"{prefix}.range", f"{prefix}.dates"
    st.session_state.setdefault(range_key, default)
    choice = st.selectbox("Time range", [*PRESETS, CUSTOM], key=range_key)
    if choice != CUSTOM:
        span = PRESETS[choice]
        if span is None:
            return TimeRange(None, None, choice)
        start = utcnow().replace(second=0, microsecond=0) - span
        return TimeRange(start, None, choice)
    today = utcnow().date()
    st.session_state.setdefault(dates_key, (today - timedelta(days=7), today))
    picked = st.date_input("From / to (UTC)", key=dates_key, max_value=today)
    days = [d for d in (picked if isinstance(picked, tuple | list) else (picked,)) if d]
    if not days:
        return TimeRange(None, None, "all time")
    first, last = min(days), max(days)
    return TimeRange(_midnight(first), _midnight(last + timedelta(days=1)), f"{first} to {last}")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
