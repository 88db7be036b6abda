"""Schema migrations through Alembic, driven from code (no ``alembic.ini`` to keep in sync)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from storage.errors import SchemaOutOfDateError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config whose env.py runs on a connection of ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is Alembic's interpolation character; escape it in URLs with encoded characters.
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    return config


def _run(engine: Engine, action: str, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (default: head). A no-op when already there."""
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema down to ``revision`` (``base`` removes every table)."""
    _run(engine, "downgrade", revision)


def head_revision() -> str:
    """The newest revision shipped with this code."""
    script = ScriptDirectory.from_config(_script_only_config())
    head = script.get_current_head()
    if head is None:
        raise RuntimeError("no migration revisions are shipped")
    return head


def revisions() -> list[str]:
    """The revisions shipped with this code, oldest first."""
    script = ScriptDirectory.from_config(_script_only_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database Alembic has never touched."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _script_only_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def require_head(engine: Engine) -> None:
    """Raise ``SchemaOutOfDateError`` unless the database is at the schema head.

    Commands that read or write application tables call this first, so an empty or old database
    gives one sentence saying what to run instead of an SQL error.
    """
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        raise SchemaOutOfDateError(
            f"the database schema is at {current or 'nothing (an empty database)'}, the code "
            f"needs {head}: run `steward db upgrade` first."
        )
