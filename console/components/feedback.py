"""One clear sentence for every failure a person can meet, and messages that survive a rerun.

Services raise ``ServiceError`` and storage raises ``StorageError``, each with a one-sentence
message; views show that sentence and never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, NoReturn

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import ServiceError
from storage.errors import StorageError

log = logging.getLogger(__name__)

Level = Literal["success", "info", "warning", "error"]
EXPECTED = (ServiceError, StorageError)


def sentence(text: str) -> str:
    """``text`` with its first letter capitalised (the rest untouched: names stay as written)."""
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


def describe(exc: Exception) -> str:
    """The one sentence to show a person for ``exc``."""
    if isinstance(exc, EXPECTED):
        return sentence(str(exc))
    # A database error mid-request (a lost connection, a lock held too long): say what to do,
    # and keep the driver's details in the log for whoever runs the console.
    log.error("database error in the console: %s", exc)
    return f"The database did not answer ({type(exc).__name__}); try again, or check System status."


def fail(exc: Exception) -> NoReturn:
    """Show ``exc`` as one sentence and stop the page (or the fragment) here."""
    st.error(describe(exc))
    st.stop()


@contextmanager
def one_sentence() -> Iterator[None]:
    """Run a block that reads through services; a failure is shown and stops the page."""
    try:
        yield
    except (*EXPECTED, SQLAlchemyError) as exc:
        fail(exc)


def flash(key: str, level: Level, text: str) -> None:
    """Keep a message to show on the next run (used by callbacks, which run before the page)."""
    st.session_state[key] = {"level": level, "text": sentence(text)}


def show_flash(key: str) -> None:
    """Show and forget the message ``flash`` kept under ``key``, if any."""
    message = st.session_state.pop(key, None)
    if not isinstance(message, dict):
        return
    show = {"success": st.success, "info": st.info, "warning": st.warning, "error": st.error}
    show.get(message.get("level", "info"), st.info)(str(message.get("text", "")))
