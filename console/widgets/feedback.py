"""Errors as one clear sentence on the page, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import ServiceError
from storage.errors import StorageError

T = TypeVar("T")
log = logging.getLogger(__name__)

# What a view may meet when it calls a service: a refusal written for people, or a database
# that does not answer. Anything else is a bug and should surface as one.
REPORTED = (ServiceError, StorageError, SQLAlchemyError)


def sentence(text: str) -> str:
    """``text`` with its first letter capitalized (and the rest, names included, untouched)."""
    return text[:1].upper() + text[1:]


def report(exc: Exception, *, prefix: str = "") -> None:
    """Show ``exc`` as one sentence. Database errors are also logged with their traceback."""
    if isinstance(exc, ServiceError | StorageError):
        message = sentence(str(exc))
    else:
        log.error("database error in a console view", exc_info=exc)
        message = f"The database did not answer ({type(exc).__name__}); try again in a moment."
    st.error(f"{prefix}{message}", icon=":material/error:")


def attempt(call: Callable[[], T]) -> T | None:
    """Run ``call``; on a refusal or a database failure show one sentence and return None."""
    try:
        return call()
    except REPORTED as exc:
        report(exc)
    return None
