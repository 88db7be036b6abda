"""Engines and transactions: the database URL, per-engine SQLite PRAGMAs, PostgreSQL pooling.

Two kinds of transaction are offered. ``read_session`` is an ordinary deferred transaction.
``write_session`` is for read-modify-write work: on SQLite it starts with ``BEGIN IMMEDIATE``
so that two writers queue on the busy timeout instead of one failing with a stale snapshot; on
PostgreSQL row locks (``FOR UPDATE [SKIP LOCKED]``) do that job. ``write_connection`` is the
same transaction without the ORM, for the run loop's hot path, which writes only prebuilt Core
statements and pays for a session's identity map and unit of work on every commit otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import Session

from storage.errors import DatabaseConfigError, DatabaseUnavailableError

URL_VARIABLE = "STEWARD_DATABASE_URL"
DEFAULT_URL = "sqlite:///data/steward.db"
SYNCHRONOUS_VARIABLE = "STEWARD_SQLITE_SYNCHRONOUS"
# SQLite's ``synchronous`` levels that keep a WAL database consistent after a crash. NORMAL
# (the default) survives a killed process; FULL and EXTRA also keep the last commits through
# a power loss or an operating system crash, at the price of an fsync per commit.
SYNCHRONOUS_LEVELS = ("NORMAL", "FULL", "EXTRA")
SQLITE_BUSY_TIMEOUT_MS = 10_000
_IMMEDIATE = "steward_immediate"


def database_url(environ: dict[str, str] | None = None) -> URL:
    """The configured database URL, parsed and checked, with SQLite's folder created.

    Raises:
        DatabaseConfigError: the variable is malformed or names an unsupported database.
        DatabaseUnavailableError: the SQLite file's folder cannot be created.
    """
    env = os.environ if environ is None else environ
    raw = env.get(URL_VARIABLE, "").strip() or DEFAULT_URL
    url = parse_url(raw)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(url.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailableError(
                f"{URL_VARIABLE}: cannot create the folder {str(folder)!r} for the SQLite "
                f"database ({exc.strerror or exc})."
            ) from exc
    return url


def parse_url(raw: str) -> URL:
    """Parse a database URL, mapping PostgreSQL URLs onto the psycopg 3 driver."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise DatabaseConfigError(
            f"{URL_VARIABLE} is not a database URL: {mask_url(raw)!r} "
            "(expected e.g. sqlite:///data/steward.db or postgresql://user@host/db)."
        ) from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
        if not url.database:
            raise DatabaseConfigError(f"{URL_VARIABLE} names no PostgreSQL database: {url!r}.")
    elif backend != "sqlite":
        raise DatabaseConfigError(
            f"{URL_VARIABLE} uses {backend!r}; Steward supports sqlite and postgresql."
        )
    return url


def mask_url(url: URL | str) -> str:
    """The URL with any password hidden, safe to show or log."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def sqlite_synchronous(environ: dict[str, str] | None = None) -> str:
    """The SQLite ``synchronous`` level ``STEWARD_SQLITE_SYNCHRONOUS`` configures (NORMAL if
    unset), checked as ``synchronous_level`` checks it."""
    env = os.environ if environ is None else environ
    return synchronous_level(env.get(SYNCHRONOUS_VARIABLE, ""))


def synchronous_level(raw: str) -> str:
    """``raw`` as one of ``SYNCHRONOUS_LEVELS``, upper-cased; blank means NORMAL.

    Raises:
        DatabaseConfigError: ``raw`` names a level that is not in ``SYNCHRONOUS_LEVELS``.
    """
    level = raw.strip().upper() or "NORMAL"
    if level not in SYNCHRONOUS_LEVELS:
        raise DatabaseConfigError(
            f"{SYNCHRONOUS_VARIABLE} must be one of {', '.join(SYNCHRONOUS_LEVELS)}, not {level!r}."
        )
    return level


def create_engine(
    url: URL | str | None = None, *, synchronous: str | None = None, **kwargs: Any
) -> Engine:
    """An engine for ``url`` (default: the configured URL) with Steward's connection settings.

    ``synchronous`` is SQLite's durability level (default: ``STEWARD_SQLITE_SYNCHRONOUS``, else
    NORMAL); PostgreSQL ignores it.
    """
    if url is None:
        url = database_url()
    elif isinstance(url, str):
        url = parse_url(url)
    if url.get_backend_name() == "sqlite":
        level = sqlite_synchronous() if synchronous is None else synchronous_level(synchronous)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _configure_sqlite(engine, level)
    else:
        options: dict[str, Any] = {
            "pool_size": 10,
            "max_overflow": 10,
            "pool_pre_ping": True,
            "pool_recycle": 1800,
            "connect_args": {"connect_timeout": 5, "application_name": "steward"},
        }
        options.update(kwargs)
        engine = sa.create_engine(url, **options)
    return engine


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    """Set PRAGMAs on every connection of *this* engine and take over BEGIN handling."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would issue BEGIN lazily and defeat both the
        # PRAGMAs below and BEGIN IMMEDIATE; SQLAlchemy's documented recipe turns it off.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def check_connection(engine: Engine) -> None:
    """Open one connection, or raise a one-line ``DatabaseUnavailableError``."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailableError(
            f"{URL_VARIABLE}: cannot connect to {mask_url(engine.url)} ({reason})."
        ) from exc


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reading. Closing it ends the transaction without keeping anything and
    detaches the loaded rows with their values intact (a rollback would expire them)."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_connection(engine: Engine) -> Iterator[sa.Connection]:
    """A Core connection whose statements commit together at the end, or not at all on an
    exception; ``BEGIN IMMEDIATE`` on SQLite, like ``write_session``."""
    with engine.connect() as connection:
        connection.execution_options(**{_IMMEDIATE: True})
        with connection.begin():
            yield connection


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together at the end, or not at all on an exception."""
    bind = engine.execution_options(**{_IMMEDIATE: True})
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
