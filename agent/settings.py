"""Every ``STEWARD_*`` setting Steward reads, checked in one place when a process starts.

The CLI checks them before any command runs and the console before anyone signs in, so a
mistyped value stops the process with one sentence naming the variable, instead of a worker
that starts and then fails every task it claims.

=============================== ============================================================
variable                        checked
=============================== ============================================================
``STEWARD_DATABASE_URL``        a sqlite or postgresql URL (``storage.engine``)
``STEWARD_SQLITE_SYNCHRONOUS``  NORMAL, FULL or EXTRA (``storage.engine``)
``STEWARD_RATE_LIMIT_STORAGE``  a synchronous moving-window store (``agent.mediation.ratelimit``)
``STEWARD_PRICING_FILE``        a readable price table (``agent.pricing``)
``STEWARD_EMBEDDED_WORKER``     a yes or no
``STEWARD_USER``                a user name
``STEWARD_REVIEW_HOLD_MINUTES`` minutes a taken review stays taken (``agent.reviews``)
``STEWARD_NOTIFY_FILE``         a readable notification file (``agent.notify``)
``STEWARD_SESSION_IDLE_MINUTES`` a positive number, not above the absolute timeout
``STEWARD_SESSION_MAX_HOURS``   a positive number (``agent.sessions``)
``STEWARD_SESSION_SECRET``      at least 32 characters when set
``STEWARD_OTEL_EXPORT``         a yes or no; if yes, a known OTLP protocol (``telemetry``)
``STEWARD_METRICS_PORT``        a port, or HOST:PORT (``agent.telemetry.config``)
``STEWARD_LOG_FORMAT``          text or json (``agent.telemetry.config``)
=============================== ============================================================

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, the standard switch for message
contents in traces, is checked here too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from agent.errors import ConfigurationError, InvalidInput
from agent.mediation.ratelimit import configured_storage
from agent.pricing import PRICING_FILE_VARIABLE, price_table
from agent.reviews.assignment import hold_minutes
from agent.sessions import SessionPolicy
from agent.telemetry import config as telemetry
from agent.users import NAME_PATTERN
from storage.engine import database_url, sqlite_synchronous
from storage.errors import StorageError

EMBEDDED_WORKER_VARIABLE = "STEWARD_EMBEDDED_WORKER"
USER_VARIABLE = "STEWARD_USER"
_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """The checked settings of this process.

    Attributes:
        database_url: where the data lives (SQLite's folder exists).
        sqlite_synchronous: SQLite's durability level.
        rate_limit_storage: the URI of the rate-limit store, or None: the database.
        pricing_file: the price table added to the defaults, if any.
        embedded_worker: whether the console runs a worker of its own.
        user: the default for ``--as USER`` on the command line, if any.
        review_hold_minutes: how long a review an operator took stays theirs.
        notify_file: the notification channels and routes, if any.
        sessions: how long console sessions live, and the key that signs their cookies.
        otel_export: whether workers send traces to an OTLP collector.
        otel_content: whether message contents leave with the traces (opt-in).
        metrics_address: where ``/metrics`` is served, if anywhere.
        log_format: ``text`` or ``json``.
    """

    database_url: URL
    sqlite_synchronous: str
    rate_limit_storage: str | None
    pricing_file: Path | None
    embedded_worker: bool
    user: str | None
    sessions: SessionPolicy
    review_hold_minutes: float = 15.0
    notify_file: Path | None = None
    otel_export: bool = False
    otel_content: bool = False
    metrics_address: tuple[str, int] | None = None
    log_format: str = "text"


def check_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check every ``STEWARD_*`` setting (default: from ``os.environ``).

    Raises:
        ConfigurationError: one sentence naming the first variable that is wrong and what to
            set instead.
    """
    env = os.environ if environ is None else environ
    try:
        url = database_url(dict(env))
        synchronous = sqlite_synchronous(dict(env))
    except StorageError as exc:
        raise ConfigurationError(str(exc)) from exc
    return Settings(
        database_url=url,
        sqlite_synchronous=synchronous,
        rate_limit_storage=configured_storage(env),
        pricing_file=_pricing_file(env),
        embedded_worker=embedded_worker_enabled(env),
        user=_user(env),
        review_hold_minutes=hold_minutes(env),
        notify_file=_notify_file(env),
        sessions=SessionPolicy.from_env(env),
        otel_export=telemetry.export_enabled(env),
        otel_content=telemetry.content_enabled(env),
        metrics_address=telemetry.metrics_address(env),
        log_format=telemetry.log_format(env),
    )


def _notify_file(env: Mapping[str, str]) -> Path | None:
    from agent.notify.config import FILE_VARIABLE, configured  # apprise is not needed here

    configured(env)
    raw = env.get(FILE_VARIABLE, "").strip()
    return Path(raw) if raw else None


def _pricing_file(env: Mapping[str, str]) -> Path | None:
    try:
        price_table(env)
    except InvalidInput as exc:
        # agent.pricing words its own errors; make each name the variable and end as a sentence.
        message = str(exc).rstrip(".")
        if PRICING_FILE_VARIABLE not in message:
            message = f"{PRICING_FILE_VARIABLE}: {message}"
        raise ConfigurationError(f"{message}.") from exc
    raw = env.get(PRICING_FILE_VARIABLE, "").strip()
    return Path(raw) if raw else None


def embedded_worker_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the console runs a worker of its own: ``STEWARD_EMBEDDED_WORKER``, yes unless
    it says no.

    Raises:
        ConfigurationError: the variable is neither a yes nor a no.
    """
    env = os.environ if environ is None else environ
    raw = env.get(EMBEDDED_WORKER_VARIABLE, "").strip()
    if raw.lower() in ("", *_YES):
        return True
    if raw.lower() in _NO:
        return False
    raise ConfigurationError(
        f"{EMBEDDED_WORKER_VARIABLE} must be 1 or 0 (or true/false, yes/no, on/off), not {raw!r}."
    )


def _user(env: Mapping[str, str]) -> str | None:
    # Taken as written: the command line passes the value on unstripped.
    raw = env.get(USER_VARIABLE, "")
    if not raw:
        return None
    if not raw.isascii() and any("\udc80" <= char <= "\udcff" for char in raw):
        # Python decodes bytes that are not UTF-8 in the environment as lone surrogates.
        raise ConfigurationError(f"{USER_VARIABLE} is not valid UTF-8 text; set it to a user name.")
    if not NAME_PATTERN.fullmatch(raw):
        raise ConfigurationError(
            f"{USER_VARIABLE} must be a user name (1 to 64 of a-z, 0-9, '_', '.', '-'), "
            f"not {raw!r}."
        )
    return raw
