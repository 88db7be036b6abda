"""The export's persisted cursor: whose turn it is, which segments are planned, what was sent.

A segment is planned (its bounds and the run's status saved) in one transaction before it is
sent, and marked sent after the collector accepted it: a send repeated after a crash or an
outage rebuilds exactly the same spans. Only runs that stopped (parked for a person, or
finished) are planned, so a segment never ends in the middle of a commit; the run row and its
steps are committed together, so the run's ``step_count`` bounds what is there to send.

The low-water mark skips the runs that are finished and fully sent; it only passes runs older
than a few minutes, so a run whose insert commits after a later one's is never jumped over.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from agent.telemetry.rows import Segment
from storage.engine import read_session, write_connection
from storage.enums import RunStatus
from storage.models import TelemetryCursor, TelemetryRun
from storage.tables import RUNS, table
from storage.types import utcnow

CURSORS = table(TelemetryCursor)
EXPORTS = table(TelemetryRun)
TRACES = "traces"
# A run in these states has stopped: what it committed is a whole segment.
STOPPED = (RunStatus.WAITING_REVIEW, *sorted(s for s in RunStatus if s.is_terminal))
TERMINAL = tuple(s for s in RunStatus if s.is_terminal)
SETTLE = timedelta(minutes=5)


@dataclass(frozen=True)
class Backlog:
    """How far the export is behind: runs with steps not yet sent, and those steps."""

    runs: int
    steps: int


def installation_key(engine: Engine) -> str:
    """This installation's key for trace ids, created with the cursor on first use."""
    with read_session(engine) as session:
        key = (
            session.connection()
            .execute(sa.select(CURSORS.c.installation).where(CURSORS.c.name == TRACES))
            .scalar_one_or_none()
        )
    if key is not None:
        return str(key)
    try:
        with write_connection(engine) as connection:
            connection.execute(
                sa.insert(CURSORS).values(
                    name=TRACES,
                    installation=uuid.uuid4().hex,
                    low_water_run_id=0,
                    failures=0,
                    last_error="",
                    updated_at=utcnow(),
                )
            )
    except IntegrityError:
        pass  # another process created it first: read theirs
    return installation_key(engine)


def take_turn(engine: Engine, owner: str, *, lease_s: float) -> bool:
    """Take the export's turn for ``lease_s`` seconds, unless another process holds it or the
    export is backing off after a failed send."""
    now = utcnow()
    with write_connection(engine) as connection:
        taken = connection.execute(
            sa.update(CURSORS)
            .where(CURSORS.c.name == TRACES)
            .where(
                sa.or_(
                    CURSORS.c.lease_owner.is_(None),
                    CURSORS.c.lease_owner == owner,
                    CURSORS.c.lease_expires_at < now,
                )
            )
            .where(sa.or_(CURSORS.c.retry_at.is_(None), CURSORS.c.retry_at <= now))
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
        ).rowcount
    return taken == 1


def end_turn(engine: Engine, owner: str, *, moved: bool = False) -> None:
    """Give the turn back; after a turn that sent something (``moved``), move the low-water
    mark on (read outside the write transaction: only the turn's holder moves it)."""
    values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
    if moved:
        with read_session(engine) as session:
            values["low_water_run_id"] = _next_low_water(session.connection(), utcnow())
    with write_connection(engine) as connection:
        connection.execute(
            sa.update(CURSORS)
            .where(CURSORS.c.name == TRACES)
            .where(CURSORS.c.lease_owner == owner)
            .values(**values)
        )


def has_work(engine: Engine) -> bool:
    """Whether a segment waits to be sent (read only: an idle turn writes nothing)."""
    with read_session(engine) as session:
        connection = session.connection()
        low = _low_water(connection)
        pending = connection.execute(
            sa.select(EXPORTS.c.run_id)
            .where(EXPORTS.c.run_id >= low)
            .where(EXPORTS.c.planned_seq > EXPORTS.c.sent_seq)
            .limit(1)
        ).first()
        if pending is not None:
            return True
        fresh = connection.execute(_fresh_runs(low).with_only_columns(RUNS.c.id).limit(1)).first()
    return fresh is not None


def _fresh_runs(low: int) -> sa.Select[Any]:
    """Stopped production runs with committed steps not yet planned."""
    return (
        sa.select(
            RUNS.c.id,
            RUNS.c.status,
            RUNS.c.step_count,
            EXPORTS.c.run_id.label("known"),
            EXPORTS.c.sent_seq,
            EXPORTS.c.segment_seq,
            EXPORTS.c.segments,
        )
        .select_from(RUNS.outerjoin(EXPORTS, EXPORTS.c.run_id == RUNS.c.id))
        .where(RUNS.c.id >= low)
        .where(RUNS.c.eval_run_id.is_(None))
        .where(RUNS.c.status.in_(STOPPED))
        .where(RUNS.c.step_count > sa.func.coalesce(EXPORTS.c.sent_seq, 0))
        .where(sa.or_(EXPORTS.c.run_id.is_(None), EXPORTS.c.planned_seq == EXPORTS.c.sent_seq))
        .order_by(RUNS.c.id)
    )


def plan(engine: Engine, *, limit: int) -> list[Segment]:
    """The next segments to send (at most ``limit`` runs): those planned but not yet
    accepted first, then new ones, planned now.

    Only the holder of the export's turn plans, so the candidates are read outside the write
    transaction, which stays as short as its writes: on SQLite it holds the one write lock that
    the runs' commits wait for."""
    with read_session(engine) as session:
        connection = session.connection()
        low = _low_water(connection)
        pending = list(
            connection.execute(
                sa.select(EXPORTS)
                .where(EXPORTS.c.run_id >= low)
                .where(EXPORTS.c.planned_seq > EXPORTS.c.sent_seq)
                .order_by(EXPORTS.c.run_id)
                .limit(limit)
            )
        )
        fresh: Sequence[sa.Row[Any, Any, Any, Any, Any, Any, Any]] = ()
        if len(pending) < limit:
            fresh = connection.execute(_fresh_runs(low).limit(limit - len(pending))).all()
    segments = [
        Segment(
            run_id=row.run_id,
            first_seq=row.segment_seq,
            last_seq=row.planned_seq,
            previous_seq=row.previous_segment_seq,
            status=row.planned_status,
            index=row.segments,
        )
        for row in pending
    ]
    if not fresh:
        return segments
    now = utcnow()
    inserts: list[dict[str, object]] = []
    updates: list[dict[str, object]] = []
    for row in fresh:
        if row.known is None:
            segment = Segment(row.id, 1, row.step_count, 0, row.status.value, 1)
        else:
            segment = Segment(
                row.id,
                row.sent_seq + 1,
                row.step_count,
                row.segment_seq,
                row.status.value,
                row.segments + 1,
            )
        segments.append(segment)
        values = {
            "sent_seq": segment.first_seq - 1,
            "planned_seq": segment.last_seq,
            "segment_seq": segment.first_seq,
            "previous_segment_seq": segment.previous_seq,
            "planned_status": segment.status,
            "segments": segment.index,
            "updated_at": now,
        }
        if row.known is None:
            inserts.append({"run_id": row.id, **values})
        else:
            updates.append({"key": row.id, **values})
    with write_connection(engine) as connection:
        if inserts:
            connection.execute(sa.insert(EXPORTS), inserts)
        if updates:
            connection.execute(_PLAN_UPDATE, updates)
    return sorted(segments, key=lambda s: s.run_id)


_PLAN_UPDATE = sa.update(EXPORTS).where(EXPORTS.c.run_id == sa.bindparam("key"))
_SENT_UPDATE = (
    sa.update(EXPORTS)
    .where(EXPORTS.c.run_id == sa.bindparam("key"))
    .where(EXPORTS.c.planned_seq == sa.bindparam("planned"))
)


def mark_sent(engine: Engine, segments: list[Segment]) -> None:
    """Record that the collector accepted ``segments``."""
    now = utcnow()
    with write_connection(engine) as connection:
        connection.execute(
            _SENT_UPDATE,
            [
                {"key": s.run_id, "planned": s.last_seq, "sent_seq": s.last_seq, "updated_at": now}
                for s in segments
            ],
        )
        connection.execute(
            sa.update(CURSORS)
            .where(CURSORS.c.name == TRACES)
            .values(failures=0, last_error="", retry_at=None, sent_at=now, updated_at=now)
        )


def record_failure(
    engine: Engine, error: str, delay_s: Callable[[int], float]
) -> tuple[int, float]:
    """Record a failed send and, ``delay_s(failures in a row)`` seconds on, the next try;
    returns the failures in a row and that delay."""
    with write_connection(engine) as connection:
        failures = 1 + int(
            connection.execute(
                sa.select(CURSORS.c.failures).where(CURSORS.c.name == TRACES)
            ).scalar_one()
        )
        delay = delay_s(failures)
        now = utcnow()
        connection.execute(
            sa.update(CURSORS)
            .where(CURSORS.c.name == TRACES)
            .values(
                failures=failures,
                last_error=error[:500],
                retry_at=now + timedelta(seconds=delay),
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
    return failures, delay


def backlog(engine: Engine) -> Backlog:
    """Production runs with committed steps not yet sent, and how many steps that is."""
    with read_session(engine) as session:
        connection = session.connection()
        low = _low_water(connection)
        unsent = RUNS.c.step_count - sa.func.coalesce(EXPORTS.c.sent_seq, 0)
        row = connection.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(unsent), 0))
            .select_from(RUNS.outerjoin(EXPORTS, EXPORTS.c.run_id == RUNS.c.id))
            .where(RUNS.c.id >= low)
            .where(RUNS.c.eval_run_id.is_(None))
            .where(unsent > 0)
        ).one()
    return Backlog(runs=int(row[0]), steps=int(row[1]))


def _low_water(connection: sa.Connection) -> int:
    low = connection.execute(
        sa.select(CURSORS.c.low_water_run_id).where(CURSORS.c.name == TRACES)
    ).scalar_one_or_none()
    return int(low or 0)


def _next_low_water(connection: sa.Connection, now: datetime) -> int:
    """The first run that may still have something to send (or is too recent to pass)."""
    low = _low_water(connection)
    sent = sa.func.coalesce(EXPORTS.c.sent_seq, 0)
    done = sa.and_(RUNS.c.status.in_(TERMINAL), sent >= RUNS.c.step_count)
    first_open = connection.execute(
        sa.select(sa.func.min(RUNS.c.id))
        .select_from(RUNS.outerjoin(EXPORTS, EXPORTS.c.run_id == RUNS.c.id))
        .where(RUNS.c.id >= low)
        .where(
            sa.or_(
                RUNS.c.created_at > now - SETTLE,
                sa.and_(RUNS.c.eval_run_id.is_(None), sa.not_(done)),
            )
        )
    ).scalar_one_or_none()
    if first_open is not None:
        return int(first_open)
    last = connection.execute(
        sa.select(sa.func.max(RUNS.c.id)).where(RUNS.c.id >= low)
    ).scalar_one_or_none()
    return low if last is None else int(last) + 1
