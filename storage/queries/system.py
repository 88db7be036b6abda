"""What the status view shows: where the data lives, its schema revision, sizes, workers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, col, select

from storage import migrate
from storage.engine import mask_url
from storage.models import Worker, metadata


@dataclass(frozen=True)
class WorkerHeartbeat:
    id: str
    hostname: str
    pid: int
    embedded: bool
    started_at: datetime
    heartbeat_at: datetime
    runs_processed: int


@dataclass(frozen=True)
class SystemStatus:
    database_url: str
    dialect: str
    revision: str | None
    head: str
    row_counts: dict[str, int]
    workers: list[WorkerHeartbeat]
    # How far a commit is durable: SQLite's ``synchronous`` level or PostgreSQL's
    # ``synchronous_commit``, as the database reports it for this connection.
    durability: str = ""

    @property
    def up_to_date(self) -> bool:
        return self.revision == self.head


def system_status(*, session: Session) -> SystemStatus:
    """Status of the database behind ``session``; row counts only for tables that exist."""
    bind = session.get_bind()
    connection = session.connection()
    existing = set(sa.inspect(connection).get_table_names())
    counts: dict[str, int] = {}
    for table in metadata.sorted_tables:
        if table.name in existing:
            counts[table.name] = session.execute(
                sa.select(sa.func.count()).select_from(table)
            ).scalar_one()
    workers: list[WorkerHeartbeat] = []
    if Worker.__tablename__ in existing:
        workers = live_workers(session=session)
    revision = MigrationContext.configure(connection).get_current_revision()
    return SystemStatus(
        durability=_durability(connection),
        database_url=mask_url(bind.engine.url),
        dialect=bind.dialect.name,
        revision=revision,
        head=migrate.head_revision(),
        row_counts=counts,
        workers=workers,
    )


_SQLITE_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _durability(connection: sa.Connection) -> str:
    if connection.dialect.name == "sqlite":
        level = int(connection.exec_driver_sql("PRAGMA synchronous").scalar_one())
        return f"synchronous={_SQLITE_SYNCHRONOUS.get(level, level)}"
    if connection.dialect.name == "postgresql":
        setting = connection.exec_driver_sql("SHOW synchronous_commit").scalar()
        return f"synchronous_commit={setting}"
    return ""


def live_workers(*, session: Session) -> list[WorkerHeartbeat]:
    """Workers that have not said they stopped, latest heartbeat first."""
    rows = session.exec(
        select(Worker)
        .where(col(Worker.stopped_at).is_(None))
        .order_by(col(Worker.heartbeat_at).desc())
    ).all()
    return [
        WorkerHeartbeat(
            id=w.id,
            hostname=w.hostname,
            pid=w.pid,
            embedded=w.embedded,
            started_at=w.started_at,
            heartbeat_at=w.heartbeat_at,
            runs_processed=w.runs_processed,
        )
        for w in rows
    ]
