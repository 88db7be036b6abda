"""Migrations bring an empty database to head, match the models exactly, and are idempotent."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL

from storage import migrate
from storage.engine import create_engine
from storage.models import metadata


def _diff(url: URL) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_upgrade_empty_database_to_head_matches_models(db_url: URL) -> None:
    engine = create_engine(db_url)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert _diff(db_url) == []


def test_upgrade_twice_is_a_no_op_and_downgrade_removes_everything(db_url: URL) -> None:
    engine = create_engine(db_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        remaining = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
        assert remaining == set()
    finally:
        engine.dispose()


def test_models_differ_from_an_empty_database() -> None:
    """The comparison above can fail: on an empty database it finds every table missing."""
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), metadata)
    assert {d[1].name for d in diffs if d[0] == "add_table"} == {
        t.name for t in metadata.sorted_tables
    }
