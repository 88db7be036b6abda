"""Policy counter totals and reservations, read and written inside the caller's transaction.

Counting and reserving must be one atomic step per counter key (see
``agent.mediation.counters``): ``lock_counter_keys`` serializes the transactions that touch a
key, so the second of two concurrent decisions counts the first one's reservation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storage.models import LimitReservation
from storage.tables import table
from storage.types import UTCDateTime, utcnow

RESERVATIONS = table(LimitReservation)

_TOTALS = (
    sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(RESERVATIONS.c.amount), 0.0))
    .where(RESERVATIONS.c.counter_key == sa.bindparam("key"))
    .where(RESERVATIONS.c.created_at >= sa.bindparam("since", type_=UTCDateTime))
    .where(RESERVATIONS.c.released_at.is_(None))
)
_RESERVE = sa.insert(RESERVATIONS)
_RELEASE = (
    sa.update(RESERVATIONS)
    .where(RESERVATIONS.c.idempotency_key == sa.bindparam("call_key"))
    .where(RESERVATIONS.c.released_at.is_(None))
)


def lock_counter_keys(connection: sa.Connection, keys: Iterable[str]) -> None:
    """Hold a transaction-scoped lock on each counter key until the caller's transaction ends.

    PostgreSQL takes an advisory lock per key (in sorted order, so two transactions never wait
    on each other in a circle); SQLite's write transaction (``BEGIN IMMEDIATE``) already
    excludes every other writer, which is the lock.
    """
    if connection.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )


def counter_totals(connection: sa.Connection, key: str, since: datetime) -> tuple[int, float]:
    """How many calls hold a reservation on ``key`` since ``since``, and their amounts' sum."""
    count, total = connection.execute(_TOTALS, {"key": key, "since": since}).one()
    return int(count), float(total)


def reserve(connection: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert reservations (``LimitReservation`` columns but ``id``, ``released_at``)."""
    if rows:
        connection.execute(_RESERVE, [{"released_at": None, **row} for row in rows])


def release(connection: sa.Connection, idempotency_key: str) -> None:
    """Give back what the call with ``idempotency_key`` reserved: it did not take effect."""
    connection.execute(_RELEASE, {"call_key": idempotency_key, "released_at": utcnow()})
