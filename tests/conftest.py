"""Shared fixtures: a database parametrized over a temp-file SQLite and a real PostgreSQL.

PostgreSQL comes from ``STEWARD_TEST_POSTGRES_URL`` (default: the local server with trust
auth). A fresh database is created for the test session and dropped after it. When the server
cannot be reached, PostgreSQL tests are skipped locally but *fail* when ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL, Engine, make_url

from storage import migrate
from storage.engine import create_engine
from storage.models import metadata

ADMIN_URL = os.environ.get("STEWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _admin_conninfo() -> str:
    url = make_url(ADMIN_URL)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresServer:
    """Creates and drops databases on the test PostgreSQL server."""

    def __init__(self) -> None:
        self.admin = make_url(ADMIN_URL).set(drivername="postgresql+psycopg")
        self.created: list[str] = []

    def create_database(self, prefix: str = "steward_test") -> URL:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.admin.set(database=name)

    def drop_all(self) -> None:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with psycopg.connect(_admin_conninfo(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {make_url(ADMIN_URL)!r} is unreachable: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)
    server = PostgresServer()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> URL:
    """One fresh database for the whole test session."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> URL:
    """An empty database URL: a new SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return make_url(f"sqlite:///{tmp_path / 'steward.db'}")
    url: URL = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def engine(db_url: URL) -> Iterator[Engine]:
    """An engine on an empty database with the schema created from the models."""
    eng = create_engine(db_url)
    metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def migrated(db_url: URL) -> Iterator[Engine]:
    """An engine on a database brought to the schema head by the migrations (what the real
    ``steward`` command checks for before it does anything)."""
    eng = create_engine(db_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the demo seeded and every sample task processed (built once)."""
    from tests.support.console import build_demo_template

    path = tmp_path_factory.mktemp("demo") / "template.db"
    build_demo_template(path)
    return path


@pytest.fixture
def demo_url(demo_template: Path, tmp_path: Path) -> str:
    """This test's own copy of the seeded demo database."""
    from tests.support.console import copy_template

    return copy_template(demo_template, tmp_path / "steward.db")
