"""Every attempt of a tool call is classified once, where it ends, as a health signal for the
circuit breaker: healthy (an answer, or a refusal of the call's own input), unhealthy (no
answer), or unknown. HTTP statuses are classified in tests/test_tools_http.py."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from agent.errors import Health, ToolError, ToolTimeout
from agent.runtime.executor import execute
from agent.spec import RetrySpec
from agent.tools.base import ToolContext, ToolSpec
from agent.tools.faults import Fault, FaultyTool
from agent.tools.python import PythonTool
from storage.engine import create_engine
from storage.enums import ErrorClass

RETRIES = RetrySpec(max_attempts=3, initial_backoff_s=0.001, max_backoff_s=0.002, jitter_s=0.0)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'health.db'}")
    yield engine
    engine.dispose()


def test_a_plain_tool_error_is_about_the_input_and_a_retryable_one_about_the_service() -> None:
    assert ToolError("no order O-9999 exists").health is Health.HEALTHY
    assert ToolError("the service answered 503", retryable=True).health is Health.UNHEALTHY
    assert ToolTimeout("no answer within 2s").health is Health.UNHEALTHY
    # A tool can say when the two part ways: a refusal worth retrying, a lasting outage.
    retry_later = ToolError("order locked, retry", retryable=True, health=Health.HEALTHY)
    assert retry_later.health is Health.HEALTHY
    assert ToolError("account suspended", health=Health.UNHEALTHY).health is Health.UNHEALTHY


class Scripted:
    """A tool that ends each attempt as told: raise the given exception, or return the value."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.spec = ToolSpec("svc", "A service.", {"type": "object"})

    def call(self, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        result: dict[str, Any] = outcome
        return result


def _execute(tool: Any, engine: Engine) -> Any:
    with ThreadPoolExecutor(2) as pool:
        return execute(
            tool,
            {},
            ToolContext(1, "run1:t0c0", 1.0, engine),
            retries=RETRIES,
            pool=pool,
            inline=True,
        )


@pytest.mark.parametrize(
    ("raised", "health"),
    [
        (KeyError("order_id"), Health.UNKNOWN),
        (ValueError("bad state"), Health.UNKNOWN),
        (ConnectionRefusedError("refused"), Health.UNHEALTHY),
        (TimeoutError("read timed out"), Health.UNHEALTHY),
        (httpx.ConnectError("no route"), Health.UNHEALTHY),
    ],
)
def test_an_exception_a_tool_did_not_classify_says_unknown_unless_it_is_a_lost_connection(
    sqlite_engine: Engine, raised: Exception, health: Health
) -> None:
    execution = _execute(Scripted(raised), sqlite_engine)
    assert [a.health for a in execution.attempts] == [health]
    assert (execution.health, execution.error_class) == (health, ErrorClass.TOOL_ERROR)


def test_a_result_that_is_not_an_object_is_an_answer_not_an_outage(sqlite_engine: Engine) -> None:
    execution = _execute(Scripted(["not", "an", "object"]), sqlite_engine)
    assert execution.error_class is ErrorClass.TOOL_ERROR
    assert execution.health is Health.HEALTHY

    def listing(args: Mapping[str, Any], ctx: ToolContext) -> Any:
        return ["a", "list"]

    with pytest.raises(ToolError, match="not an object") as caught:
        PythonTool(ToolSpec("listing", "", {"type": "object"}), listing).call(
            {}, ToolContext(1, "k", 1.0, sqlite_engine)
        )
    assert (caught.value.retryable, caught.value.health) == (False, Health.HEALTHY)


def test_a_call_is_as_healthy_as_its_last_attempt(sqlite_engine: Engine) -> None:
    down = ToolError("503", retryable=True)
    recovered = _execute(Scripted(down, down, {"ok": True}), sqlite_engine)
    assert [a.health for a in recovered.attempts] == [Health.UNHEALTHY] * 2 + [Health.HEALTHY]
    assert recovered.ok and recovered.health is Health.HEALTHY
    refused = _execute(Scripted(down, ToolError("no such order")), sqlite_engine)
    assert (refused.health, len(refused.attempts)) == (Health.HEALTHY, 2)
    outage = _execute(Scripted(down, down, ToolTimeout("no answer")), sqlite_engine)
    assert (outage.health, outage.error_class) == (Health.UNHEALTHY, ErrorClass.TOOL_TIMEOUT)


def test_injected_faults_are_unhealthy(sqlite_engine: Engine) -> None:
    inner = Scripted()
    faulty = FaultyTool(inner, fail_rate=0.5, hang_rate=0.5, hang_s=0.01, seed=3)
    seen = set()
    for i in range(20):
        ctx = ToolContext(1, f"k{i}", 1.0, sqlite_engine)
        fault = faulty.planned_fault(ctx)
        with pytest.raises(ToolError) as caught:
            faulty.call({}, ctx)
        assert caught.value.health is Health.UNHEALTHY
        seen.add(fault)
    assert seen == {Fault.FAIL, Fault.HANG}
