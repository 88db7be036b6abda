"""Rate-limit counters in Steward's own database: a ``limits`` store every worker shares.

The ``limits`` library ships stores for memory, Redis, Memcached and MongoDB, and no SQL one;
no maintained package adds one either. So this store is written by hand, over one small table
(``rate_limit_entries``), and plugs into the library through its documented extension points
(``Storage`` and ``MovingWindowSupport``), so ``RateLimits`` keeps using the library's own
strategies whichever store holds the counters.

Each entry is one acquisition of ``cost`` calls, alive until ``expires_at``. Deciding and
recording happen in one transaction that no other worker can interleave with: on SQLite,
``BEGIN IMMEDIATE`` takes the database's write lock before anything is read; on PostgreSQL a
transaction-scoped advisory lock per key makes the callers of that key (only) wait their turn.

Time is this process's clock, as with the library's Redis store: workers on several machines
need their clocks kept in step (NTP).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from limits.storage import MovingWindowSupport, Storage
from sqlalchemy.engine import Engine

from storage.engine import write_connection
from storage.models import RateLimitEntry
from storage.tables import table

ENTRIES = table(RateLimitEntry)
# The class of PostgreSQL advisory locks held on rate-limit keys ("STWR"). The two-key form
# lives apart from the one-key locks Steward takes elsewhere (audit chain, first user).
_LOCK_CLASS = 0x53545752

_KEY = ENTRIES.c.key == sa.bindparam("key")
_LIVE = ENTRIES.c.expires_at > sa.bindparam("now")
_KEY_LOCK = sa.select(
    sa.func.pg_advisory_xact_lock(
        sa.cast(sa.literal(_LOCK_CLASS), sa.Integer), sa.cast(sa.bindparam("lock"), sa.Integer)
    )
)
_PRUNE = sa.delete(ENTRIES).where(_KEY, ENTRIES.c.expires_at <= sa.bindparam("now"))
_WINDOW = sa.select(
    sa.func.coalesce(sa.func.sum(ENTRIES.c.cost), 0),
    sa.func.min(ENTRIES.c.expires_at),
    sa.func.max(ENTRIES.c.expires_at),
).where(_KEY, _LIVE)
_INSERT = sa.insert(ENTRIES)
# Record the acquisition only if the live entries leave room for it: the check and the
# reservation are one statement, under the transaction's lock.
_ACQUIRE = _INSERT.from_select(
    ["key", "cost", "expires_at"],
    sa.select(
        sa.bindparam("key", type_=ENTRIES.c.key.type),
        sa.bindparam("cost", type_=sa.Integer),
        sa.bindparam("expires_at", type_=ENTRIES.c.expires_at.type),
    ).where(
        sa.select(sa.func.coalesce(sa.func.sum(ENTRIES.c.cost), 0))
        .where(_KEY, _LIVE)
        .scalar_subquery()
        + sa.bindparam("cost", type_=sa.Integer)
        <= sa.bindparam("limit", type_=sa.Integer)
    ),
).returning(ENTRIES.c.id)
_CLEAR = sa.delete(ENTRIES).where(_KEY)


def _lock_id(key: str) -> int:
    """A stable signed 32-bit number for ``key``: two keys that collide only wait for each
    other, they never share counts."""
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class DatabaseStorage(Storage, MovingWindowSupport):
    """``limits`` counters in the database of ``engine``, shared by every process using it.

    Serves the moving window (what ``RateLimits`` uses) and the fixed window, which the
    ``Storage`` interface requires of every store.

    Args:
        engine: the database the counters live in (migrated to include ``rate_limit_entries``).
        clock: seconds since the epoch; ``time.time`` unless a test steps through time.
    """

    # Built from an engine, never from a URI: the library's scheme registry does not list it.
    STORAGE_SCHEME = None

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.engine = engine
        self.clock = clock

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sa.exc.SQLAlchemyError

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    @contextmanager
    def _locked(self, key: str) -> Iterator[tuple[sa.Connection, datetime]]:
        """A write transaction that holds ``key`` for itself, and the time read once it does."""
        with write_connection(self.engine) as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(_KEY_LOCK, {"lock": _lock_id(key)})
            now = self._now()
            connection.execute(_PRUNE, {"key": key, "now": now})
            yield connection, now

    def _window(self, key: str, now: datetime) -> tuple[int, datetime | None, datetime | None]:
        """The live entries of ``key`` at ``now``: their total cost, first and last expiry."""
        with self.engine.connect() as connection:
            row = connection.execute(_WINDOW, {"key": key, "now": now}).one()
        return int(row[0]), row[1], row[2]

    # -- moving window ---------------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record ``amount`` calls under ``key`` if fewer than ``limit`` remain counted from the
        last ``expiry`` seconds (the new ones included); whether they were recorded."""
        if amount > limit:
            return False
        with self._locked(key) as (connection, now):
            recorded = connection.execute(
                _ACQUIRE,
                {
                    "key": key,
                    "cost": amount,
                    "expires_at": now + timedelta(seconds=expiry),
                    "now": now,
                    "limit": limit,
                },
            ).first()
            return recorded is not None

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """When the oldest live call under ``key`` was recorded (now if none), and how many
        calls are live."""
        now = self._now()
        count, first_expiry, _last = self._window(key, now)
        if first_expiry is None:
            return now.timestamp(), 0
        return first_expiry.timestamp() - expiry, count

    # -- fixed window ----------------------------------------------------------------------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to the counter of ``key``, which ends ``expiry`` seconds after its
        first call; the counter's new value."""
        with self._locked(key) as (connection, now):
            count, _first, window_end = connection.execute(_WINDOW, {"key": key, "now": now}).one()
            ends = window_end or now + timedelta(seconds=expiry)
            connection.execute(_INSERT, {"key": key, "cost": amount, "expires_at": ends})
            return int(count) + amount

    def get(self, key: str) -> int:
        """The counter of ``key``: its live calls."""
        return self._window(key, self._now())[0]

    def get_expiry(self, key: str) -> float:
        """When the counter of ``key`` ends (now if it has no live calls)."""
        now = self._now()
        window_end = self._window(key, now)[2]
        return (window_end or now).timestamp()

    # -- housekeeping ----------------------------------------------------------------------

    def clear(self, key: str) -> None:
        """Forget every call counted under ``key``."""
        with write_connection(self.engine) as connection:
            connection.execute(_CLEAR, {"key": key})

    def reset(self) -> int | None:
        """Forget every counter; the number of entries removed."""
        with write_connection(self.engine) as connection:
            return connection.execute(sa.delete(ENTRIES)).rowcount

    def check(self) -> bool:
        """Whether the database answers."""
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.select(1))
        except sa.exc.SQLAlchemyError:
            return False
        return True
