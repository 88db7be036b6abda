"""Select boxes that remember their choice in session state, across changing options."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")


def remembered_choice(
    label: str, options: Sequence[T], key: str, *, default: T | None = None, **kwargs: Any
) -> T:
    """A selectbox under ``key`` whose value survives reruns and falls back when it vanished.

    The options of one control often depend on another (an agent's versions); when the
    remembered value is no longer among them, ``default`` (or the first option) is chosen.
    """
    if st.session_state.get(key) not in options:
        st.session_state[key] = default if default in options else options[0]
    chosen: T = st.selectbox(label, options, key=key, **kwargs)
    return chosen
