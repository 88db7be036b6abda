"""Rate limits per agent and tool, counted by the ``limits`` library (moving windows).

Counters live in ``STEWARD_RATE_LIMIT_STORAGE`` (default ``memory://``, per process). Teams
running several workers point it at a shared store the library supports, e.g. ``redis://host``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from agent.spec import RateLimitSpec

STORAGE_VARIABLE = "STEWARD_RATE_LIMIT_STORAGE"


@lru_cache(maxsize=8)
def _limiter(uri: str) -> MovingWindowRateLimiter:
    storage = storage_from_string(uri)
    if not isinstance(storage, Storage):
        raise ValueError(f"{STORAGE_VARIABLE}={uri!r} names an async storage; use a sync one")
    return MovingWindowRateLimiter(storage)


class RateLimits:
    """The rate limits of one agent version; ``hit`` consumes one call if all limits allow it."""

    def __init__(self, agent: str, specs: Sequence[RateLimitSpec], storage_uri: str | None = None):
        self.agent = agent
        self.items: tuple[tuple[str, str, RateLimitItem], ...] = tuple(
            (spec.tool, spec.limit, parse(spec.limit)) for spec in specs
        )
        uri = storage_uri or os.environ.get(STORAGE_VARIABLE, "memory://")
        self.limiter = _limiter(uri)
        self._for_tool: dict[str, tuple[tuple[str, RateLimitItem], ...]] = {}

    def _limits_for(self, tool: str) -> tuple[tuple[str, RateLimitItem], ...]:
        found = self._for_tool.get(tool)
        if found is None:
            found = tuple(
                (text, item)
                for pattern, text, item in self.items
                if fnmatch.fnmatchcase(tool, pattern)
            )
            self._for_tool[tool] = found
        return found

    def hit(self, tool: str) -> str | None:
        """Count one call of ``tool``; the exceeded limit's text, or None when allowed."""
        limits = self._limits_for(tool)
        for text, item in limits:
            if not self.limiter.test(item, self.agent, tool):
                return text
        for text, item in limits:
            if not self.limiter.hit(item, self.agent, tool):
                return text
        return None


def reset_counters() -> None:
    """Forget every counter in this process's limit stores (tests and ``steward`` resets)."""
    for uri in (os.environ.get(STORAGE_VARIABLE, "memory://"), "memory://"):
        _limiter(uri).storage.reset()
