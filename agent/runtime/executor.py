"""The execution layer: one call of one tool, time-bounded, retried only when that is safe.

A call is retried (with exponential backoff and jitter, by tenacity) only when the error is
retryable *and* a repeat cannot do harm: the tool reads, or it is idempotent (it receives the
same idempotency key on every attempt). Each attempt is reported for the trace, with what it
says about the tool's health (``agent.errors.Health``) for the circuit breaker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from agent.errors import Health, ToolError, ToolTimeout
from agent.spec import RetrySpec
from agent.tools.base import Tool, ToolContext
from storage.enums import ErrorClass

# Exceptions a tool may let escape unclassified that still say the service could not answer.
_UNREACHABLE = (TimeoutError, ConnectionError, httpx.TransportError)


@dataclass(frozen=True)
class Attempt:
    number: int
    started_at: float  # time.time()
    duration_ms: float
    error_class: ErrorClass | None = None
    error: str | None = None
    retryable: bool = False
    health: Health = Health.HEALTHY


@dataclass
class Execution:
    """The outcome of a call after all attempts: a result, or the last classified error."""

    result: dict[str, Any] | None = None
    error_class: ErrorClass | None = None
    error: str | None = None
    retryable: bool = False
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_class is None

    @property
    def health(self) -> Health:
        """What the call says about the tool's health, for its circuit breaker: what its last
        attempt said. Retries stop at the first answer, so the last attempt is the call's
        verdict; the failed attempts before it are the same trouble seen again, not more
        evidence (a call whose three attempts time out is one timeout, not three)."""
        return self.attempts[-1].health if self.attempts else Health.UNKNOWN

    @property
    def duration_ms(self) -> float:
        return sum(a.duration_ms for a in self.attempts)


def call_with_timeout(
    tool: Tool,
    args: Mapping[str, Any],
    ctx: ToolContext,
    *,
    pool: ThreadPoolExecutor,
    inline: bool = False,
) -> dict[str, Any]:
    """One attempt. ``inline`` (or the tool's own ``spec.inline``) runs it in this thread, for
    tools that bound their own time; any other tool runs in ``pool``, waited for at most
    ``ctx.timeout_s``."""
    if inline or tool.spec.inline:
        return tool.call(args, ctx)
    future = pool.submit(tool.call, args, ctx)
    try:
        return future.result(timeout=ctx.timeout_s)
    except FutureTimeout:
        # The thread cannot be stopped; the flag tells a tool still running not to write.
        ctx.cancelled.set()
        future.cancel()
        raise ToolTimeout(f"{tool.spec.name} did not answer within {ctx.timeout_s:g} s") from None


def execute(
    tool: Tool,
    args: Mapping[str, Any],
    context: ToolContext,
    *,
    retries: RetrySpec,
    pool: ThreadPoolExecutor,
    time_left_s: float | None = None,
    inline: bool = False,
) -> Execution:
    """Run ``tool`` with retries where safe; never raises for tool failures.

    Args:
        tool: the tool.
        args: the authorized arguments.
        context: the first attempt's context; each retry gets a copy with its own number,
            time bound and cancellation.
        retries: how often and how patiently to retry.
        pool: the threads attempts run in when they must be cut off at their timeout.
        time_left_s: what is left of the run's deadline: no attempt outlasts it and no retry
            starts after it.
        inline: run attempts in this thread (tools that bound their own time).
    """
    execution = Execution()
    can_repeat = tool.spec.idempotent or not tool.spec.has_side_effects
    deadline = None if time_left_s is None else time.monotonic() + time_left_s

    def attempt_once(state: RetryCallState | None = None) -> dict[str, Any]:
        number = len(execution.attempts) + 1
        timeout_s = context.timeout_s
        if deadline is not None:
            timeout_s = max(min(timeout_s, deadline - time.monotonic()), 0.001)
        ctx = replace(context, attempt=number, timeout_s=timeout_s, cancelled=threading.Event())
        started = time.time()
        clock = time.perf_counter()
        try:
            result = call_with_timeout(tool, args, ctx, pool=pool, inline=inline)
        except ToolError as exc:
            execution.attempts.append(
                Attempt(
                    number,
                    started,
                    _ms(clock),
                    exc.error_class,
                    str(exc),
                    exc.retryable,
                    exc.health,
                )
            )
            raise
        except Exception as exc:
            # Not classified by the tool: only a timeout or a lost connection says something
            # about the service; anything else (most often a bug in the tool) says nothing.
            health = Health.UNHEALTHY if isinstance(exc, _UNREACHABLE) else Health.UNKNOWN
            execution.attempts.append(
                Attempt(
                    number,
                    started,
                    _ms(clock),
                    ErrorClass.TOOL_ERROR,
                    f"{type(exc).__name__}: {exc}",
                    health=health,
                )
            )
            raise ToolError(
                f"{tool.spec.name} raised {type(exc).__name__}: {exc}", health=health
            ) from exc
        if not isinstance(result, dict):
            # The tool answered, wrongly: a bug in the tool, not an outage of its service.
            execution.attempts.append(
                Attempt(
                    number,
                    started,
                    _ms(clock),
                    ErrorClass.TOOL_ERROR,
                    "result is not an object",
                    health=Health.HEALTHY,
                )
            )
            raise ToolError(
                f"{tool.spec.name} returned {type(result).__name__}, not an object",
                health=Health.HEALTHY,
            )
        execution.attempts.append(Attempt(number, started, _ms(clock)))
        return result

    attempts = stop_after_attempt(retries.max_attempts if can_repeat else 1)
    stop = attempts if time_left_s is None else attempts | stop_after_delay(time_left_s)
    retrying = Retrying(
        stop=stop,
        wait=wait_exponential_jitter(
            multiplier=retries.initial_backoff_s, max=retries.max_backoff_s, jitter=retries.jitter_s
        ),
        retry=retry_if_exception(lambda exc: isinstance(exc, ToolError) and exc.retryable),
        reraise=True,
    )
    try:
        execution.result = retrying(attempt_once)
    except ToolError as exc:
        execution.error_class = exc.error_class
        execution.error = str(exc)
        execution.retryable = exc.retryable
    return execution


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
