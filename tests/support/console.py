"""Console test support: a demo database seeded once per test session, and an AppTest opener.

Seeding and draining the demo takes seconds, so it happens once into a template SQLite file;
every test gets its own copy and can change it freely.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from agent.demo.seed import seed_demo
from agent.plugins import installed_registry
from storage import migrate
from storage.engine import create_engine

from .runtime import drive, platform_for

APP = str(Path(__file__).resolve().parents[2] / "console" / "app.py")


def build_demo_template(path: Path) -> None:
    """Migrate, seed the demo and process every sample task into the SQLite file at ``path``."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        migrate.upgrade(engine)
        # Without the release demo (suites, support versions 3 and 4, their evaluations): the
        # console tests store the suites and versions they read.
        seed_demo(platform_for(engine), with_evaluations=False)
        drive(engine, installed_registry(), max_claims=500)
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()


def copy_template(template: Path, target: Path) -> str:
    """Copy the seeded template to ``target``; returns its database URL."""
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def open_console(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    *,
    user: str | None = None,
    page: str | None = None,
    query: dict[str, str] | None = None,
) -> AppTest:
    """Run the console on ``url`` as ``user`` (None: signed out), optionally on ``page``.

    ``page`` is a view file name such as ``"queue.py"``. The embedded worker is off so the test
    decides when work is processed.
    """
    monkeypatch.setenv("STEWARD_DATABASE_URL", url)
    monkeypatch.setenv("STEWARD_EMBEDDED_WORKER", "0")
    at = AppTest.from_file(APP, default_timeout=60)
    if user is not None:
        at.session_state["auth.user"] = {"name": user}
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    if page is not None:
        at.switch_page(f"views/{page}")
        at.run()
    assert not at.exception, at.exception
    return at


def engine_for(url: str) -> Engine:
    """A fresh engine on ``url`` for assertions about what the database holds."""
    return create_engine(url)
