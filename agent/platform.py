"""The composition root: what one process builds once and passes to every service and the runtime.

The console and the CLI each open one ``Platform`` (database engine, tool registry, shared HTTP
client, compiled versions, the thread pool that bounds tool calls, the rate-limit store) and hand
it down; nothing in
``agent/`` builds these for itself, so a test or a second database gets its own, whole set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import sqlalchemy as sa
from limits.storage import MemoryStorage, Storage
from sqlalchemy.engine import Engine

from agent.compiled import VersionCatalog
from agent.mediation.ratelimit import rate_limit_storage
from agent.tools.mcp.connections import McpConnections
from agent.tools.registry import ToolRegistry
from storage.tables import AGENTS

# Python tools cannot be interrupted: a call that outlives its timeout keeps its thread until it
# returns. The pool is large so that a few hung calls do not starve the others; tools should
# bound their own waits (HTTP tools do, through httpx timeouts).
TOOL_POOL_SIZE = 64


PAUSE_TTL_S = 0.5
"""How stale a process's view of paused agents may be: a pause made elsewhere stops this
process's runs before their next call within this time."""
_PAUSED = sa.select(AGENTS.c.id).where(AGENTS.c.paused_at.is_not(None))


class PauseBoard:
    """Which agents are paused, as this process last read it: read again at most every
    ``PAUSE_TTL_S`` seconds (one small query), and at once after ``forget``, which the pause
    and resume services call. The run loop asks before every call; a dictionary look-up."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._paused: frozenset[int] = frozenset()
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def paused(self, agent_id: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._read_at >= PAUSE_TTL_S:
                with self.engine.connect() as connection:
                    self._paused = frozenset(connection.execute(_PAUSED).scalars())
                self._read_at = now
            return agent_id in self._paused

    def forget(self) -> None:
        """Read the paused agents again at the next question."""
        with self._lock:
            self._read_at = float("-inf")


@dataclass(frozen=True)
class Sandbox:
    """Where an evaluation's calls land instead of production.

    Attributes:
        eval_run_id: the evaluation.
        records: its own database for the systems of record (seeded from the suite's fixtures),
            which also holds the circuit breakers its calls trip.
        namespace: what its policy counters are kept under, apart from production's and from
            the other cases' of the evaluation.
        http: the base URL each HTTP tool is bound to; an HTTP tool with no binding refuses
            to run rather than reach a production service.
    """

    eval_run_id: int
    records: Engine
    namespace: str
    http: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Platform:
    """One process's engine, tool registry, HTTP client, compiled versions and tool pool.

    Attributes:
        engine: the database.
        registry: the installed tools and policy facts.
        http: the pooled client HTTP tools share (timeouts are set per request).
        sandbox: set for an evaluation: tools, facts, breakers and rate limits use the
            sandbox instead of production.
        versions: compiled versions of this database, cached.
        pauses: which agents are paused (the emergency brake), as this process last read it.
    """

    engine: Engine
    registry: ToolRegistry
    http: httpx.Client = field(default_factory=lambda: httpx.Client(follow_redirects=False))
    sandbox: Sandbox | None = None
    versions: VersionCatalog = field(init=False)
    pauses: PauseBoard = field(init=False)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _rate_limit_store: Storage | None = field(default=None, init=False, repr=False)
    _mcp: McpConnections | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.versions = VersionCatalog(self.engine, self.registry)
        self.pauses = PauseBoard(self.engine)

    @property
    def tool_pool(self) -> ThreadPoolExecutor:
        """The threads tool calls run in when they must be cut off at their timeout."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(TOOL_POOL_SIZE, thread_name_prefix="steward-tool")
            return self._pool

    @property
    def mcp(self) -> McpConnections:
        """The connections to the MCP servers of this process's versions (servers start on
        the first call that needs them)."""
        with self._lock:
            if self._mcp is None:
                self._mcp = McpConnections()
            return self._mcp

    @property
    def records_engine(self) -> Engine:
        """The database tools and fact providers read and write: the sandbox's in an
        evaluation, else Steward's own (where the demo's systems of record live)."""
        return self.sandbox.records if self.sandbox is not None else self.engine

    def paused(self, agent_id: int) -> bool:
        """Whether the agent's production runs must stop (an evaluation is never paused)."""
        return self.sandbox is None and self.pauses.paused(agent_id)

    def sandboxed(self, sandbox: Sandbox) -> Platform:
        """A platform for one evaluation: the same database, tools and HTTP client, with calls
        landing in ``sandbox``."""
        return Platform(self.engine, self.registry, self.http, sandbox)

    @property
    def rate_limit_store(self) -> Storage:
        """Where rate-limit counters live (``STEWARD_RATE_LIMIT_STORAGE``, else this database),
        one store for every agent of this process, so several workers share one limit.

        Raises:
            ConfigurationError: the variable names a store that cannot be used.
        """
        with self._lock:
            if self._rate_limit_store is None:
                # An evaluation counts against limits of its own, never production's.
                self._rate_limit_store = (
                    MemoryStorage() if self.sandbox is not None else rate_limit_storage(self.engine)
                )
            return self._rate_limit_store

    def close(self) -> None:
        """Release the HTTP connections, stop the MCP servers this process started, and the
        tool threads (a hung tool call is not waited for)."""
        if self.sandbox is None:  # a sandboxed platform borrows its parent's client
            self.http.close()
        with self._lock:
            pool, self._pool = self._pool, None
            mcp, self._mcp = self._mcp, None
        if mcp is not None:
            mcp.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
