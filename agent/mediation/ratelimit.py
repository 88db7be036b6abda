"""Rate limits per agent and tool, counted by the ``limits`` library (moving windows).

Where the counters live is one setting, ``STEWARD_RATE_LIMIT_STORAGE``:

- unset (the default): in Steward's database (``DatabaseStorage``), so every worker process on
  that database counts against the same limits, on PostgreSQL and SQLite alike;
- the URI of a store the ``limits`` library supports, e.g. ``redis://host:6379``: there;
- ``memory://``: in each process on its own, the cheapest, and right only for a single worker
  process (each process lets the whole limit through).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.storage import MovingWindowSupport, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.engine import Engine

from agent.errors import ConfigurationError
from agent.mediation.ratelimit_store import DatabaseStorage
from agent.spec import RateLimitSpec

log = logging.getLogger(__name__)

STORAGE_VARIABLE = "STEWARD_RATE_LIMIT_STORAGE"
_WHAT_TO_DO = (
    "name a store the limits library supports, with its client installed (for "
    "redis://host:6379: pip install 'limits[redis]'), or leave it unset to keep the counters "
    "in the database"
)

_lock = threading.Lock()
_named: dict[str, Storage] = {}


def configured_storage(environ: Mapping[str, str] | None = None) -> str | None:
    """The store ``STEWARD_RATE_LIMIT_STORAGE`` names, checked; None when it is unset, which
    keeps the counters in the database.

    Raises:
        ConfigurationError: the variable names a store that cannot be built or that cannot
            count moving windows synchronously.
    """
    env = os.environ if environ is None else environ
    uri = env.get(STORAGE_VARIABLE, "").strip()
    if not uri:
        return None
    named_storage(uri)
    return uri


def named_storage(uri: str) -> Storage:
    """The store ``uri`` names, built once per process and shared by every agent's limits.

    Raises:
        ConfigurationError: as ``configured_storage``.
    """
    with _lock:
        store = _named.get(uri)
        if store is None:
            store = _build(uri)
            _named[uri] = store
    return store


def _build(uri: str) -> Storage:
    shown = _masked(uri)
    try:
        store = storage_from_string(uri)
    except LimitsConfigurationError as exc:
        # The library's first sentence says what is wrong; the rest points to its own docs.
        reason = str(exc).split(". ")[0].replace(uri, shown)
        raise ConfigurationError(
            f"{STORAGE_VARIABLE} cannot be used ({reason}); {_WHAT_TO_DO}."
        ) from exc
    except Exception as exc:
        # Redis, MongoDB and the others parse their URI (some connect) while being built, each
        # with its own exception types; whichever it is, the process must not start on it.
        reason = f"{type(exc).__name__}: {exc}".replace(uri, shown)
        raise ConfigurationError(
            f"{STORAGE_VARIABLE} cannot be used ({reason}); {_WHAT_TO_DO}."
        ) from exc
    if not isinstance(store, Storage):
        raise ConfigurationError(
            f"{STORAGE_VARIABLE} names an asynchronous store ({shown}); workers call it "
            f"synchronously: {_WHAT_TO_DO}."
        )
    if not isinstance(store, MovingWindowSupport):
        raise ConfigurationError(
            f"{STORAGE_VARIABLE} names a store that cannot count moving windows ({shown}); "
            f"{_WHAT_TO_DO}."
        )
    return store


def _masked(uri: str) -> str:
    """``uri`` with any password hidden, safe to show or log."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return uri.replace(f":{parts.password}@", ":***@", 1)


def rate_limit_storage(engine: Engine, environ: Mapping[str, str] | None = None) -> Storage:
    """Where the counters of the workers on ``engine`` live: the store
    ``STEWARD_RATE_LIMIT_STORAGE`` names, else the database itself.

    Raises:
        ConfigurationError: as ``configured_storage``.
    """
    uri = configured_storage(environ)
    if uri is None:
        return DatabaseStorage(engine)
    if urlsplit(uri).scheme == "memory" and engine.dialect.name == "postgresql":
        log.warning(
            "%s=memory:// counts rate limits in each process on its own: with several workers "
            "on this PostgreSQL database each one lets the whole limit through. Leave it unset "
            "to count in the database.",
            STORAGE_VARIABLE,
        )
    return named_storage(uri)


class RateLimits:
    """The rate limits of one agent version; ``hit`` consumes one call if all limits allow it.

    Args:
        agent: the agent's name; its counters are shared by all its versions.
        specs: the version's ``rate_limits``.
        storage: where the counters live (``rate_limit_storage`` chooses it).
    """

    def __init__(self, agent: str, specs: Sequence[RateLimitSpec], storage: Storage) -> None:
        self.agent = agent
        self.items: tuple[tuple[str, str, RateLimitItem], ...] = tuple(
            (spec.tool, spec.limit, parse(spec.limit)) for spec in specs
        )
        self.limiter = MovingWindowRateLimiter(storage)
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
        if len(limits) > 1:
            # Spend nothing from the first limit when a later one is already exhausted. With a
            # single limit the hit itself decides, atomically, so the test would only cost a
            # round trip to the store.
            for text, item in limits:
                if not self.limiter.test(item, self.agent, tool):
                    return text
        for text, item in limits:
            if not self.limiter.hit(item, self.agent, tool):
                return text
        return None


def reset_counters() -> None:
    """Forget every counter in the stores this process named (tests use it between cases).

    Counters in the database go with the database; ``DatabaseStorage.reset`` empties them.
    """
    with _lock:
        stores = list(_named.values())
    for store in stores:
        store.reset()
