"""``steward db``: upgrade creates the schema, runs again as a no-op; current; downgrade."""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import URL

from storage import migrate
from storage.engine import create_engine
from tests.support.cli import steward


def test_upgrade_then_no_op_then_current_then_downgrade(db_url: URL) -> None:
    first = steward(db_url, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert "upgraded empty ->" in first.stdout
    engine = create_engine(db_url)
    try:
        assert "runs" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()

    second = steward(db_url, "db", "upgrade")
    assert second.returncode == 0
    assert "nothing to do" in second.stdout

    current = steward(db_url, "db", "current", "--json")
    assert json.loads(current.stdout)["current"] == migrate.head_revision()
    assert json.loads(current.stdout)["up_to_date"] is True

    down = steward(db_url, "db", "downgrade", "base")
    assert down.returncode == 0, down.stderr
    engine = create_engine(db_url)
    try:
        assert "runs" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_downgrade_to_head_is_refused(db_url: URL) -> None:
    result = steward(db_url, "db", "downgrade", "head")
    assert result.returncode == 2
    assert "downgrade needs a revision" in result.stderr
