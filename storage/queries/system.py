"""What the status view shows: where the data lives, its schema revision, sizes, workers.

Row counts are production's: the rows of evaluation runs (their tasks, runs, steps, ledger rows,
limit reservations, reviews and decisions) are counted apart, in ``evaluation_rows``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from storage import migrate
from storage.engine import mask_url
from storage.models import (
    LimitReservation,
    Review,
    ReviewDecision,
    Run,
    Step,
    Task,
    ToolCall,
    Worker,
    metadata,
)
from storage.queries.production import evaluation_run_ids, is_production_task


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
    # Production's rows per table (an evaluation's are in ``evaluation_rows``).
    row_counts: dict[str, int]
    workers: list[WorkerHeartbeat]
    # How far a commit is durable: SQLite's ``synchronous`` level or PostgreSQL's
    # ``synchronous_commit``, as the database reports it for this connection.
    durability: str = ""
    # Rows that belong to evaluation runs, per table that holds any.
    evaluation_rows: dict[str, int] = field(default_factory=dict)

    @property
    def up_to_date(self) -> bool:
        return self.revision == self.head


def system_status(*, session: Session) -> SystemStatus:
    """Status of the database behind ``session``; row counts only for tables that exist."""
    bind = session.get_bind()
    connection = session.connection()
    existing = set(sa.inspect(connection).get_table_names())
    # A database not yet upgraded to evaluations has no runs of theirs to set apart.
    evaluated = Run.__tablename__ in existing and "eval_run_id" in {
        column["name"] for column in sa.inspect(connection).get_columns(Run.__tablename__)
    }
    counts: dict[str, int] = {}
    evaluations: dict[str, int] = {}
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue
        total = session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        condition = _of_evaluations(table.name)
        of_evaluations = (
            session.execute(
                sa.select(sa.func.count()).select_from(table).where(condition)
            ).scalar_one()
            if condition is not None and evaluated
            else 0
        )
        counts[table.name] = total - of_evaluations
        if of_evaluations:
            evaluations[table.name] = of_evaluations
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
        evaluation_rows=evaluations,
    )


def _of_evaluations(table: str) -> ColumnElement[bool] | None:
    """The condition selecting the rows of ``table`` that belong to evaluation runs, for the
    tables that hold production work beside evaluations'."""
    runs = evaluation_run_ids()
    conditions: dict[str, ColumnElement[bool]] = {
        Run.__tablename__: col(Run.eval_run_id).is_not(None),
        Task.__tablename__: sa.not_(is_production_task()),
        Step.__tablename__: col(Step.run_id).in_(runs),
        ToolCall.__tablename__: col(ToolCall.run_id).in_(runs),
        # Namespaced apart from production's counters, but stored in the same table.
        LimitReservation.__tablename__: col(LimitReservation.run_id).in_(runs),
        Review.__tablename__: col(Review.run_id).in_(runs),
        ReviewDecision.__tablename__: col(ReviewDecision.review_id).in_(
            sa.select(col(Review.id)).where(col(Review.run_id).in_(runs))
        ),
    }
    return conditions.get(table)


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
