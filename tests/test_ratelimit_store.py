"""Rate-limit counters in the database: moving and fixed windows, expiry, reset, and no
overshoot when many callers race for the last calls of a limit."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agent.mediation.ratelimit import RateLimits, named_storage, rate_limit_storage
from agent.mediation.ratelimit_store import ENTRIES, DatabaseStorage
from agent.spec import RateLimitSpec
from storage.engine import create_engine


class SteppedClock:
    """Seconds since the epoch that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _entries(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(ENTRIES)).scalar_one())


def test_moving_window_admits_the_limit_then_each_call_as_the_oldest_expires(
    engine: Engine,
) -> None:
    clock = SteppedClock()
    store = DatabaseStorage(engine, clock=clock)
    start = clock.now
    assert store.acquire_entry("k", 2, 60)
    clock.now += 10
    assert store.acquire_entry("k", 2, 60)
    clock.now += 10
    assert not store.acquire_entry("k", 2, 60)
    assert store.get_moving_window("k", 2, 60) == (pytest.approx(start), 2)
    clock.now = start + 59.9  # the first call is still in the window
    assert not store.acquire_entry("k", 2, 60)
    clock.now = start + 60.001  # now it is not: one call is free again, and only one
    assert store.acquire_entry("k", 2, 60)
    assert not store.acquire_entry("k", 2, 60)
    assert store.get_moving_window("k", 2, 60) == (pytest.approx(start + 10), 2)


def test_an_amount_counts_as_that_many_calls(engine: Engine) -> None:
    store = DatabaseStorage(engine, clock=SteppedClock())
    assert not store.acquire_entry("k", 3, 60, amount=4)  # more than the limit: never
    assert store.acquire_entry("k", 3, 60, amount=2)
    assert not store.acquire_entry("k", 3, 60, amount=2)
    assert store.acquire_entry("k", 3, 60, amount=1)
    assert store.get_moving_window("k", 3, 60)[1] == 3


def test_an_empty_window_starts_now(engine: Engine) -> None:
    clock = SteppedClock()
    store = DatabaseStorage(engine, clock=clock)
    assert store.get_moving_window("never-used", 5, 60) == (pytest.approx(clock.now), 0)


def test_expired_entries_are_removed_when_their_key_is_used_again(engine: Engine) -> None:
    clock = SteppedClock()
    store = DatabaseStorage(engine, clock=clock)
    for _ in range(3):
        assert store.acquire_entry("k", 3, 1)
    assert _entries(engine) == 3
    clock.now += 2
    assert store.acquire_entry("k", 3, 1)
    assert _entries(engine) == 1  # the table holds at most a limit's worth per key


def test_keys_count_apart_clear_forgets_one_and_reset_forgets_all(engine: Engine) -> None:
    store = DatabaseStorage(engine, clock=SteppedClock())
    assert store.acquire_entry("a", 1, 60)
    assert store.acquire_entry("b", 1, 60)
    assert store.acquire_entry("c", 1, 60)
    assert not store.acquire_entry("a", 1, 60)
    store.clear("a")
    assert store.acquire_entry("a", 1, 60)
    assert not store.acquire_entry("b", 1, 60)
    assert store.reset() == 3
    assert _entries(engine) == 0
    assert store.acquire_entry("b", 1, 60)


def test_fixed_window_counter_ends_a_period_after_its_first_call(engine: Engine) -> None:
    clock = SteppedClock()
    store = DatabaseStorage(engine, clock=clock)
    start = clock.now
    assert store.get("f") == 0
    assert store.get_expiry("f") == pytest.approx(start)
    assert store.incr("f", 30) == 1
    clock.now += 20
    assert store.incr("f", 30, amount=2) == 3  # the window does not move with later calls
    assert store.get("f") == 3
    assert store.get_expiry("f") == pytest.approx(start + 30)
    clock.now = start + 30.001
    assert store.get("f") == 0
    assert store.incr("f", 30) == 1
    assert store.get_expiry("f") == pytest.approx(start + 60.001)


def test_check_says_whether_the_database_answers(engine: Engine, tmp_path: Path) -> None:
    assert DatabaseStorage(engine).check()
    missing = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}")
    try:
        assert not DatabaseStorage(missing).check()
    finally:
        missing.dispose()


def test_racing_callers_on_separate_engines_never_overshoot_the_limit(engine: Engine) -> None:
    """Eight callers, each with its own engine (as separate worker processes have), race for
    a limit of five: exactly five get through."""
    engines = [create_engine(engine.url) for _ in range(8)]
    admitted: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(engines))

    def caller(own: Engine) -> None:
        store = DatabaseStorage(own)
        barrier.wait()
        for _ in range(6):
            result = store.acquire_entry("race", 5, 60)
            with lock:
                admitted.append(result)

    threads = [threading.Thread(target=caller, args=(own,)) for own in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for own in engines:
            own.dispose()
    assert len(admitted) == 48
    assert admitted.count(True) == 5
    assert _entries(engine) == 5


def test_rate_limits_share_counters_through_the_database(engine: Engine) -> None:
    """Two ``RateLimits`` of one agent on two engines, like two workers: one limit between
    them; another agent counts on its own; the real clock frees the window."""
    specs = [RateLimitSpec("notify", "2/second"), RateLimitSpec("pay*", "1/minute")]
    other = create_engine(engine.url)
    try:
        first = RateLimits("shop", specs, DatabaseStorage(engine))
        second = RateLimits("shop", specs, DatabaseStorage(other))
        elsewhere = RateLimits("desk", specs, DatabaseStorage(engine))
        assert first.hit("notify") is None
        assert second.hit("notify") is None
        assert first.hit("notify") == "2/second"
        assert second.hit("notify") == "2/second"
        assert elsewhere.hit("notify") is None
        assert second.hit("payout") is None
        assert first.hit("payout") == "1/minute"
        assert first.hit("lookup") is None  # no limit matches: never counted
        time.sleep(1.1)
        assert second.hit("notify") is None
    finally:
        other.dispose()


def test_a_call_refused_by_one_limit_spends_nothing_from_the_others(engine: Engine) -> None:
    store = DatabaseStorage(engine, clock=SteppedClock())
    limits = RateLimits(
        "shop", [RateLimitSpec("notify", "3/minute"), RateLimitSpec("*", "1/minute")], store
    )
    assert limits.hit("notify") is None
    assert limits.hit("notify") == "1/minute"
    assert limits.hit("notify") == "1/minute"
    # Refused calls spent nothing from the 3/minute limit: one call counted there.
    assert store.get_moving_window("LIMITER/shop/notify/3/1/minute", 3, 60)[1] == 1


def test_the_database_keeps_the_counters_unless_a_store_is_named(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    unset = rate_limit_storage(engine, {})
    assert isinstance(unset, DatabaseStorage) and unset.engine is engine
    with caplog.at_level(logging.WARNING, logger="agent.mediation.ratelimit"):
        memory = rate_limit_storage(engine, {"STEWARD_RATE_LIMIT_STORAGE": "memory://"})
    assert memory is named_storage("memory://")
    # Per-process counters on a database that several workers share are worth a warning.
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if engine.dialect.name == "postgresql":
        assert len(warned) == 1 and "each one lets the whole limit through" in warned[0]
    else:
        assert warned == []
