"""A fault-injecting tool wrapper, shipped for tests and demos of retries, timeouts and breakers.

The faults are deterministic: whether an attempt fails, hangs or passes through depends only on
the seed, the call's idempotency key and the attempt number, so a run replays identically and a
test can predict exactly which attempt fails.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum
from typing import Any

from agent.errors import Health, ToolError, ToolTimeout
from agent.tools.base import Tool, ToolContext, ToolSpec

logger = logging.getLogger(__name__)

MAX_HANG_S = 300.0


class Fault(StrEnum):
    """What a ``FaultyTool`` does to one attempt."""

    FAIL = "fail"
    HANG = "hang"


class FaultyTool:
    """Wraps a tool and makes some attempts fail (retryably) or hang, as an ailing service
    does: both faults are ``Health.UNHEALTHY``, so they count toward the tool's breaker.

    A hanging attempt sleeps ``hang_s`` seconds and then raises ``ToolTimeout``; it never calls
    the inner tool. The executor's own per-call timeout is expected to cut it sooner, which is
    exactly what the wrapper exists to exercise. Failing attempts never call the inner tool
    either, so wrapping a non-idempotent tool injects no duplicate side effects.

    Args:
        inner: the tool to wrap; its spec is passed through unchanged (except that a tool
            that may hang is never run inline).
        fail_rate: share of attempts that raise a retryable ``ToolError``.
        hang_rate: share of attempts that hang.
        hang_s: how long a hang lasts (bounded by ``MAX_HANG_S``).
        seed: mixes into every draw, so two wrappers can fail on different attempts.

    Raises:
        ValueError: a rate is outside [0, 1], the rates add up to more than 1, or ``hang_s``
            is not in (0, MAX_HANG_S].
    """

    def __init__(
        self,
        inner: Tool,
        *,
        fail_rate: float = 0.0,
        hang_rate: float = 0.0,
        hang_s: float = 5.0,
        seed: int = 0,
    ) -> None:
        for label, rate in (("fail_rate", fail_rate), ("hang_rate", hang_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{label} must be between 0 and 1, got {rate}")
        if fail_rate + hang_rate > 1.0:
            raise ValueError(
                f"fail_rate + hang_rate must not exceed 1, got {fail_rate + hang_rate}"
            )
        if not 0.0 < hang_s <= MAX_HANG_S:
            raise ValueError(f"hang_s must be in (0, {MAX_HANG_S}], got {hang_s}")
        self.inner = inner
        self.fail_rate = fail_rate
        self.hang_rate = hang_rate
        self.hang_s = hang_s
        self.seed = seed

    @property
    def spec(self) -> ToolSpec:
        if self.hang_rate and self.inner.spec.inline:
            # A tool that may hang needs the executor's timeout: never run it inline.
            return replace(self.inner.spec, inline=False)
        return self.inner.spec

    def planned_fault(self, ctx: ToolContext) -> Fault | None:
        """The fault this attempt will meet, or None when it passes through to the inner tool."""
        draw = random.Random(f"{self.seed}:{ctx.idempotency_key}:{ctx.attempt}").random()  # noqa: S311
        if draw < self.fail_rate:
            return Fault.FAIL
        if draw < self.fail_rate + self.hang_rate:
            return Fault.HANG
        return None

    def call(self, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Inject this attempt's fault, if any, else call the inner tool.

        Raises:
            ToolError: an injected failure (retryable, unhealthy).
            ToolTimeout: an injected hang that was not cut short by the executor.
        """
        name = self.inner.spec.name
        fault = self.planned_fault(ctx)
        if fault is Fault.FAIL:
            logger.info("injected failure: tool=%s attempt=%d", name, ctx.attempt)
            raise ToolError(
                f"{name}: injected failure (attempt {ctx.attempt})",
                retryable=True,
                health=Health.UNHEALTHY,
            )
        if fault is Fault.HANG:
            logger.info(
                "injected hang: tool=%s attempt=%d for %.2fs", name, ctx.attempt, self.hang_s
            )
            time.sleep(self.hang_s)
            raise ToolTimeout(f"{name}: injected hang, no answer within {self.hang_s:g}s")
        return self.inner.call(args, ctx)

    def __repr__(self) -> str:
        return (
            f"FaultyTool({self.inner.spec.name!r}, fail_rate={self.fail_rate}, "
            f"hang_rate={self.hang_rate}, hang_s={self.hang_s}, seed={self.seed})"
        )
