"""The circuit breaker on its own, against real SQLite and PostgreSQL: what counts, what opens
it, and that every way a half-open trial can end (even never) leaves the tool usable again.

Several ``CircuitBreakers`` on one database stand for several worker processes."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.engine import Engine

from agent.errors import Health
from agent.mediation.circuit import CircuitBreakers
from agent.spec import CircuitSpec
from storage.engine import read_session
from storage.enums import CircuitState, ErrorClass
from storage.models import CircuitBreaker

TOOL = "check_fraud_score"
RESET_S = 0.3
# Opens on three counted failures in a row; the rate rule is kept out of the way except where
# a test is about it.
STREAK = CircuitSpec(
    failure_threshold=3, failure_rate=1.0, window=50, min_calls=50, reset_after_s=RESET_S
)


def _ok(breakers: CircuitBreakers, order: str) -> None:
    breakers.record(TOOL, Health.HEALTHY, None, input_key=order)


def _down(breakers: CircuitBreakers, order: str) -> None:
    breakers.record(TOOL, Health.UNHEALTHY, ErrorClass.TOOL_TIMEOUT, input_key=order)


def _refused(breakers: CircuitBreakers, order: str) -> None:
    breakers.record(TOOL, Health.HEALTHY, ErrorClass.TOOL_ERROR, input_key=order)


def _stored(engine: Engine) -> CircuitBreaker:
    with read_session(engine) as session:
        row = session.get(CircuitBreaker, TOOL)
    assert row is not None
    return row


def _opened(engine: Engine) -> CircuitBreakers:
    """Breakers whose circuit for TOOL has just opened, after three distinct timeouts; before
    them, order O-5040 timed out while another order was scored (a known bad input)."""
    breakers = CircuitBreakers(engine, STREAK)
    _down(breakers, "O-5040")
    _ok(breakers, "O-0")
    for order in ("O-1", "O-2", "O-3"):
        assert breakers.allow(TOOL)
        _down(breakers, order)
    assert not breakers.allow(TOOL)
    assert _stored(engine).state is CircuitState.OPEN
    return breakers


def test_failures_about_the_input_never_open_the_circuit_and_outages_do(engine: Engine) -> None:
    breakers = CircuitBreakers(engine, STREAK)
    for i in range(20):  # 4xx answers, "no such order", unclassified exceptions
        _refused(breakers, f"O-{i}")
        breakers.record(TOOL, Health.UNKNOWN, ErrorClass.TOOL_ERROR, input_key=f"X-{i}")
        assert breakers.allow(TOOL)
    _down(breakers, "O-100")
    _down(breakers, "O-101")
    assert breakers.allow(TOOL)
    _down(breakers, "O-102")
    assert not breakers.allow(TOOL)
    row = _stored(engine)
    assert (row.state, row.consecutive_failures, row.opened_count) == (CircuitState.OPEN, 3, 1)
    assert row.last_error_class is ErrorClass.TOOL_TIMEOUT


def test_refusals_do_not_break_a_streak_of_timeouts(engine: Engine) -> None:
    """A service whose front door still answers 400 while its work path times out is down."""
    breakers = CircuitBreakers(engine, STREAK)
    for i in range(3):
        _down(breakers, f"O-{i}")
        _refused(breakers, f"bad-{i}")
    assert not breakers.allow(TOOL)


def test_one_poison_input_does_not_open_the_circuit_but_distinct_failing_inputs_do(
    engine: Engine,
) -> None:
    breakers = CircuitBreakers(engine, STREAK)
    _down(breakers, "O-5040")  # a first failure: nothing tells a bad order from an outage yet
    for i in range(30):  # others are scored, and the same order times out on every run
        _ok(breakers, f"O-{i}")
        for _ in range(3):
            _down(breakers, "O-5040")
    assert breakers.allow(TOOL)
    assert _stored(engine).opened_count == 0
    for order in ("O-7001", "O-7002", "O-7003"):  # the service goes down for everyone
        assert breakers.allow(TOOL)
        _down(breakers, order)
    assert not breakers.allow(TOOL)


def test_the_failure_rate_counts_a_poison_input_once(engine: Engine) -> None:
    spec = CircuitSpec(failure_threshold=100, failure_rate=0.5, window=10, min_calls=4)
    breakers = CircuitBreakers(engine, spec)
    for i in range(20):
        _down(breakers, "O-5040")
        _ok(breakers, f"O-{i}")
    assert breakers.allow(TOOL)
    for i in range(10):  # now half of all distinct orders time out
        _down(breakers, f"D-{i}")
        _ok(breakers, f"O-{i}")
    # Open since D-9; the success reported after it (a call let through before) keeps it open.
    assert not breakers.allow(TOOL)
    assert _stored(engine).opened_count == 1


def test_a_tool_with_one_input_still_opens(engine: Engine) -> None:
    """With no other input to compare with, a repeated failure is the service's."""
    breakers = CircuitBreakers(engine, STREAK)
    for _ in range(3):
        _ok(breakers, "{}")
        _down(breakers, "{}")
    for _ in range(3):
        _down(breakers, "{}")
    assert not breakers.allow(TOOL)


def test_an_input_that_works_again_is_no_longer_suspect(engine: Engine) -> None:
    breakers = CircuitBreakers(engine, STREAK)
    _down(breakers, "O-1")  # a passing blip
    _ok(breakers, "O-2")
    _ok(breakers, "O-1")  # O-1 works again
    for order in ("O-1", "O-3", "O-4"):  # then an outage: O-1's failure counts like any
        _down(breakers, order)
    assert not breakers.allow(TOOL)


@pytest.mark.parametrize(
    ("ending", "state"),
    [
        ("success", CircuitState.CLOSED),
        ("refused", CircuitState.HALF_OPEN),
        ("unknown", CircuitState.HALF_OPEN),
        ("known bad input", CircuitState.HALF_OPEN),
        ("timeout", CircuitState.OPEN),
    ],
)
def test_every_way_a_trial_ends_settles_the_breaker(
    engine: Engine, ending: str, state: CircuitState
) -> None:
    breakers = _opened(engine)
    time.sleep(RESET_S + 0.05)
    other_worker = CircuitBreakers(engine, STREAK)
    assert breakers.allow(TOOL)  # the trial
    assert not breakers.allow(TOOL) and not other_worker.allow(TOOL)
    if ending == "success":
        _ok(breakers, "O-9")
    elif ending == "refused":  # an HTTP 404, "no order O-9 exists"
        _refused(breakers, "O-9")
    elif ending == "unknown":  # the tool raised something it did not classify
        breakers.record(TOOL, Health.UNKNOWN, ErrorClass.TOOL_ERROR, input_key="O-9")
    elif ending == "known bad input":  # it timed out before, while another order passed
        _down(breakers, "O-5040")
    else:
        _down(breakers, "O-9")
    stored = _stored(engine)
    assert stored.state is state
    assert stored.trial_started_at is None
    # Whatever the ending, nothing is left holding the slot: the next call is let through at
    # once, unless the trial found the service still down.
    assert breakers.allow(TOOL) is (state is not CircuitState.OPEN)


def test_a_trial_that_never_reports_back_frees_its_slot_after_the_reset_time(
    engine: Engine,
) -> None:
    breakers = _opened(engine)
    time.sleep(RESET_S + 0.05)
    assert breakers.allow(TOOL)  # the trial, whose worker then loses its lease: no report
    other_worker = CircuitBreakers(engine, STREAK)
    assert not breakers.allow(TOOL)
    assert not other_worker.allow(TOOL)
    assert _stored(engine).state is CircuitState.HALF_OPEN
    time.sleep(RESET_S + 0.05)
    assert other_worker.allow(TOOL)  # a new trial, in any worker
    assert not breakers.allow(TOOL)
    _ok(other_worker, "O-1")
    assert _stored(engine).state is CircuitState.CLOSED
    time.sleep(1.1)  # the first worker's view of the breakers is refreshed
    assert breakers.allow(TOOL)


def test_of_workers_racing_for_the_trial_exactly_one_gets_it(engine: Engine) -> None:
    _opened(engine)
    time.sleep(RESET_S + 0.05)
    workers = [CircuitBreakers(engine, STREAK) for _ in range(6)]
    start = threading.Barrier(len(workers))
    answers: list[bool] = []
    lock = threading.Lock()

    def ask(breakers: CircuitBreakers) -> None:
        start.wait()
        allowed = breakers.allow(TOOL)
        with lock:
            answers.append(allowed)

    threads = [threading.Thread(target=ask, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [False] * 5 + [True]
