"""Connections to the MCP servers a process's versions use, shared by every worker thread.

The SDK is asynchronous (anyio) and Steward's tools are called from worker threads, so one
background thread runs one asyncio loop for the process, and a call from a worker is handed to
it with ``run_coroutine_threadsafe`` and waited for at most the call's timeout. A server is
started (stdio) or its session opened (streamable HTTP) on the first call that needs it; on
connect its tools are listed, and each call checks the pinned tool against that listing, so a
server whose tool changed since the version was created is refused, never silently used.

A connection is held open by one task of the loop (the SDK's transports are context managers
whose cancel scopes must be left by the task that entered them); calls borrow its session. A
server that dies (a crash mid-call, a closed pipe, a lost HTTP session) is forgotten, and the
next call starts it again, with exponential backoff between failed starts (tenacity).

Secrets: ``${env:NAME}`` in a stdio server's ``env`` or an HTTP server's ``headers`` is read from
the environment when the server is connected; every such value is scrubbed from the messages
this module raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult, TextContent
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from agent.binding import canonical_json
from agent.errors import Health, ToolError, ToolTimeout
from agent.spec import McpServerDef, McpToolPin
from agent.tools.mcp.pins import ListedTool, PinCheck, check_pins
from storage.enums import ErrorClass

logger = logging.getLogger(__name__)

IDEMPOTENCY_META_KEY = "steward/idempotency-key"
"""The ``_meta`` key a call's idempotency key travels in (stable across retries and restarts)."""
FENCING_META_KEY = "steward/fencing-token"
"""The ``_meta`` key of the run's fencing token, ``<run>:<claim>`` (see ``agent.tools.base``)."""

_ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_START_ATTEMPTS = 3
_START_BACKOFF_S = 0.25
_START_BACKOFF_MAX_S = 5.0
_DEFAULT_CONNECT_S = 30.0
REDACTED = "[redacted]"


class McpUnavailable(ToolError):
    """The server could not be started or reached (or answered its listing wrongly)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message, retryable=True, error_class=ErrorClass.MCP_UNAVAILABLE, health=Health.UNHEALTHY
        )


class McpServerCrashed(ToolError):
    """The connection to the server was lost while a call was in flight: whether the tool ran
    is unknown, so only a tool that may be repeated is retried (the executor's rule)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            retryable=True,
            error_class=ErrorClass.MCP_SERVER_CRASHED,
            health=Health.UNHEALTHY,
        )


class McpToolsChanged(ToolError):
    """A pinned tool is missing from the server or its schema changed: the version must be
    inspected and created again (and pass its evaluation) before the tool is called."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            retryable=False,
            error_class=ErrorClass.MCP_TOOLS_CHANGED,
            health=Health.UNHEALTHY,
        )


@dataclass(frozen=True)
class McpCall:
    """One call of a pinned tool, as the connection manager makes it."""

    server: McpServerDef
    pin: McpToolPin
    args: Mapping[str, Any]
    timeout_s: float
    idempotency_key: str
    fencing_token: str | None = None


def resolve_env(value: str, secrets: list[str], *, where: str) -> str:
    """``value`` with each ``${env:NAME}`` replaced by the variable's value, added to
    ``secrets`` so that it can be scrubbed.

    Raises:
        McpUnavailable: a variable is not set (not retryable: setting it is a person's job).
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise ToolError(
                f"environment variable {name} is not set (needed by {where}); set it where the "
                "worker runs",
                error_class=ErrorClass.MCP_UNAVAILABLE,
            )
        if found:
            secrets.append(found)
        return found

    return _ENV_REFERENCE.sub(substitute, value)


def redact(value: Any, secrets: list[str]) -> Any:
    """``value`` with every secret replaced, recursing through JSON containers."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


def client_for(
    server: McpServerDef, secrets: list[str]
) -> tuple[Client, httpx2.AsyncClient | None]:
    """An (unentered) SDK client for ``server``, its secrets resolved into ``secrets``, and the
    HTTP client it uses (the caller closes it) for an HTTP server."""
    if server.url is not None:
        headers = {
            key: resolve_env(template, secrets, where=f"the {key!r} header of {server.name}")
            for key, template in server.headers.items()
        }
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
        return Client(streamable_http_client(server.url, http_client=http), cache=None), http
    env = {
        key: resolve_env(template, secrets, where=f"the {key} variable of {server.name}")
        for key, template in server.env.items()
    }
    params = StdioServerParameters(
        command=server.command[0], args=list(server.command[1:]), env=env or None, cwd=server.cwd
    )
    return Client(params, cache=None), None


async def list_tools(client: Client) -> list[ListedTool]:
    """Every tool the connected server lists (all pages)."""
    listed: list[ListedTool] = []
    cursor: str | None = None
    for _ in range(100):  # a server whose pages never end cannot hang a connect
        page = await client.list_tools(cursor=cursor, cache_mode="refresh")
        for tool in page.tools:
            notes = tool.annotations
            listed.append(
                ListedTool(
                    name=tool.name,
                    description=tool.description or "",
                    input_schema=dict(tool.input_schema),
                    read_only=notes.read_only_hint if notes else None,
                    destructive=notes.destructive_hint if notes else None,
                    idempotent=notes.idempotent_hint if notes else None,
                )
            )
        cursor = page.next_cursor
        if cursor is None:
            break
    return listed


class _Connection:
    """One open connection to one server, held by a task of the manager's loop."""

    def __init__(self, server: McpServerDef) -> None:
        self.server = server
        self.secrets: list[str] = []
        self.client: Client | None = None
        self.listed: list[ListedTool] = []
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.client is not None and not self._stop.is_set()

    async def open(self, timeout_s: float) -> None:
        """Start the holding task and wait until the server is connected and listed.

        Raises:
            McpUnavailable: it could not be started, reached or listed in time.
        """
        self._task = asyncio.create_task(self._hold(), name=f"mcp:{self.server.name}")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            self.close()
            raise McpUnavailable(
                f"MCP server {self.server.name} ({self.server.describe()}) did not start and "
                f"list its tools within {timeout_s:g}s"
            ) from None
        if self.client is None:
            failure = self._failure
            if isinstance(failure, ToolError):
                raise failure
            detail = _describe(failure)
            raise McpUnavailable(
                redact(
                    f"cannot connect to MCP server {self.server.name} "
                    f"({self.server.describe()}): {detail}",
                    self.secrets,
                )
            )

    async def _hold(self) -> None:
        try:
            async with AsyncExitStack() as stack:
                client, http = client_for(self.server, self.secrets)
                if http is not None:
                    await stack.enter_async_context(http)
                await stack.enter_async_context(client)
                self.listed = await list_tools(client)
                self.client = client
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # recorded for the caller that waits in ``open``
            self._failure = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            self.client = None
            self._stop.set()
            self._ready.set()

    def close(self) -> None:
        self._stop.set()

    def check(self, pin: McpToolPin) -> PinCheck:
        return check_pins([pin], self.listed)


class McpConnections:
    """The MCP connections of one process, on one background event loop.

    Use one per process (``Platform.mcp``); ``close`` stops every server it started.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[str, _Connection] = {}
        self._starting: dict[str, asyncio.Lock] = {}

    def call(self, call: McpCall, cancelled: threading.Event | None = None) -> dict[str, Any]:
        """Call one pinned tool and return its result as a JSON object.

        Args:
            call: the server, the pinned tool, the arguments and the bounds of the call.
            cancelled: set by the runtime when it stopped waiting; checked before sending.

        Raises:
            ToolTimeout: no answer within ``call.timeout_s``.
            McpUnavailable: the server cannot be started or reached.
            McpServerCrashed: the connection was lost during the call.
            McpToolsChanged: the pinned tool is missing or changed on the server.
            ToolError: the tool answered with an error (``isError``), not retryable.
        """
        loop = self._running_loop()
        future = asyncio.run_coroutine_threadsafe(self._call(call, cancelled), loop)
        try:
            return future.result(timeout=call.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ToolTimeout(
                f"{call.pin.name}: MCP server {call.server.name} gave no answer within "
                f"{call.timeout_s:g}s"
            ) from None

    def listing(self, server: McpServerDef, timeout_s: float) -> list[ListedTool]:
        """What ``server`` lists now (connecting it if needed)."""
        loop = self._running_loop()

        async def listed() -> list[ListedTool]:
            connection = await self._connection(server, timeout_s)
            return list(connection.listed)

        return asyncio.run_coroutine_threadsafe(listed(), loop).result(timeout=timeout_s + 1)

    def close(self) -> None:
        """Stop every server this process started and the loop thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def shut() -> None:
            tasks = []
            for connection in self._connections.values():
                connection.close()
                if connection._task is not None:
                    tasks.append(connection._task)
            if tasks:
                await asyncio.wait(tasks, timeout=10)
            self._connections.clear()

        try:
            asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=15)
        except (concurrent.futures.TimeoutError, RuntimeError):
            logger.warning("MCP servers did not stop within 15s; leaving them to exit")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="steward-mcp", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    async def _call(self, call: McpCall, cancelled: threading.Event | None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + call.timeout_s
        connection = await self._connection(call.server, call.timeout_s)
        check = connection.check(call.pin)
        problem = check.problem(call.pin)
        if problem is not None:
            raise McpToolsChanged(
                f"{call.pin.name}: {problem} (MCP server {call.server.name}); the version pinned "
                f"{call.pin.schema_hash}. Run `steward mcp inspect` on the server, review the "
                "change, and create a new version with the new pins"
            )
        if cancelled is not None and cancelled.is_set():
            raise ToolError(f"{call.pin.name}: the call outlived its timeout and was not sent")
        meta: dict[str, Any] = {IDEMPOTENCY_META_KEY: call.idempotency_key}
        if call.fencing_token is not None:
            meta[FENCING_META_KEY] = call.fencing_token
        client = connection.client
        if client is None:
            raise McpServerCrashed(
                f"{call.pin.name}: the connection to MCP server {call.server.name} closed"
            )
        try:
            result = await client.call_tool(
                call.pin.remote_name,
                dict(call.args),
                read_timeout_seconds=max(deadline - loop.time(), 0.001),
                meta=meta,  # type: ignore[arg-type]
            )
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._forget(call.server, connection)
                raise McpServerCrashed(
                    redact(
                        f"{call.pin.name}: the connection to MCP server {call.server.name} was "
                        f"lost during the call ({exc.message}); it will be started again",
                        connection.secrets,
                    )
                ) from None
            if exc.code == REQUEST_TIMEOUT:
                raise ToolTimeout(
                    f"{call.pin.name}: MCP server {call.server.name} gave no answer within "
                    f"{call.timeout_s:g}s"
                ) from None
            raise ToolError(
                redact(
                    f"{call.pin.name}: MCP server {call.server.name} refused the call "
                    f"(error {exc.code}: {exc.message})",
                    connection.secrets,
                )
            ) from None
        except (TimeoutError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the transport raised, the session is gone
            self._forget(call.server, connection)
            raise McpServerCrashed(
                redact(
                    f"{call.pin.name}: the connection to MCP server {call.server.name} failed "
                    f"during the call ({_describe(exc)}); it will be started again",
                    connection.secrets,
                )
            ) from None
        return _result(call.pin.name, result, connection.secrets)

    async def _connection(self, server: McpServerDef, timeout_s: float) -> _Connection:
        """The live connection to ``server``, opened (with backoff between failed starts)
        when there is none."""
        key = _connection_key(server)
        connection = self._connections.get(key)
        if connection is not None and connection.alive:
            return connection
        lock = self._starting.setdefault(key, asyncio.Lock())
        async with lock:
            connection = self._connections.get(key)
            if connection is not None and connection.alive:
                return connection
            loop = asyncio.get_running_loop()
            deadline = loop.time() + min(timeout_s, _DEFAULT_CONNECT_S)
            retrying = AsyncRetrying(
                stop=stop_after_attempt(_START_ATTEMPTS)
                | stop_after_delay(min(timeout_s, _DEFAULT_CONNECT_S)),
                wait=wait_exponential(multiplier=_START_BACKOFF_S, max=_START_BACKOFF_MAX_S),
                retry=retry_if_exception_type(McpUnavailable),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    fresh = _Connection(server)
                    await fresh.open(max(deadline - loop.time(), 0.001))
            self._connections[key] = fresh
            if connection is not None:
                logger.info("MCP server %s started again", server.name)
            return fresh

    def _forget(self, server: McpServerDef, connection: _Connection) -> None:
        connection.close()
        key = _connection_key(server)
        if self._connections.get(key) is connection:
            del self._connections[key]


def _connection_key(server: McpServerDef) -> str:
    """One connection per way of reaching a server (its pins are checked per call)."""
    return canonical_json(
        {
            "name": server.name,
            "command": list(server.command),
            "env": dict(server.env),
            "cwd": server.cwd,
            "url": server.url,
            "headers": dict(server.headers),
        }
    )


def _result(name: str, result: CallToolResult, secrets: list[str]) -> dict[str, Any]:
    """A tool's answer as a JSON object: its structured content when it is an object, else its
    content blocks (text joined in ``text``)."""
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    if result.is_error:
        message = " ".join(texts) or "the tool reported an error"
        raise ToolError(redact(f"{name}: {message}", secrets))
    structured = result.structured_content
    if isinstance(structured, dict):
        answer: dict[str, Any] = structured
    elif structured is not None:
        answer = {"result": structured}
    else:
        answer = {"text": "\n".join(texts)} if texts else {}
        others = [
            block.model_dump(mode="json", by_alias=True, exclude_none=True)
            for block in result.content
            if not isinstance(block, TextContent)
        ]
        if others:
            answer["content"] = others
    redacted: dict[str, Any] = redact(answer, secrets)
    return redacted


def _describe(exc: BaseException | None) -> str:
    """A failure in one phrase, looking inside the exception groups anyio raises."""
    if exc is None:
        return "no reason given"
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


@contextmanager
def connections() -> Iterator[McpConnections]:
    """A connection manager closed on exit (for commands and tests)."""
    manager = McpConnections()
    try:
        yield manager
    finally:
        manager.close()
