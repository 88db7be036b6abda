"""``steward mcp inspect``: what an MCP server offers, as the pins a version would take.

Connects once, lists the tools with their schema hashes and the governance their annotations
suggest, and builds the ``mcp_servers`` entry to paste into a version. The engineer then reviews
each pin (side effect, idempotency, data sources) before creating the version: the annotations
are the server's claims about itself, and the version is where Steward's own answer is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.errors import InvalidInput, ToolError
from agent.spec import McpServerDef
from agent.tools.mcp.connections import connections
from agent.tools.mcp.pins import ListedTool


def server_definition(
    *,
    name: str,
    command: Sequence[str] = (),
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> McpServerDef:
    """A server definition (with no pins yet) from what a person typed.

    Raises:
        InvalidInput: neither or both of a command and a URL, or headers for a command.
    """
    if bool(command) == (url is not None):
        raise InvalidInput("give either --command (a stdio server) or --url (an HTTP server)")
    if url is not None and not url.startswith(("http://", "https://")):
        raise InvalidInput(f"--url {url!r} is not an http:// or https:// URL")
    if command and headers:
        raise InvalidInput("--header applies to --url; a command takes --env")
    if url is not None and env:
        raise InvalidInput("--env applies to --command; an HTTP server takes --header")
    return McpServerDef(
        name=name, command=tuple(command), url=url, headers=dict(headers or {}), env=dict(env or {})
    )


def inspect_server(server: McpServerDef, *, timeout_s: float = 30.0) -> list[ListedTool]:
    """Connect to ``server`` (starting it, for a command), list its tools, and stop it.

    Raises:
        InvalidInput: it cannot be started or reached, or did not list its tools in time.
    """
    with connections() as manager:
        try:
            return manager.listing(server, timeout_s)
        except ToolError as exc:
            raise InvalidInput(str(exc)) from None
        except TimeoutError:
            raise InvalidInput(
                f"MCP server {server.name} did not list its tools within {timeout_s:g}s"
            ) from None


def server_entry(server: McpServerDef, listed: Sequence[ListedTool]) -> dict[str, Any]:
    """The ``mcp_servers`` entry of a version that pins every tool in ``listed``."""
    entry: dict[str, Any] = {"name": server.name}
    if server.url is not None:
        entry["url"] = server.url
        if server.headers:
            entry["headers"] = dict(server.headers)
    else:
        entry["command"] = list(server.command)
        if server.env:
            entry["env"] = dict(server.env)
    entry["tools"] = [tool.pin() for tool in listed]
    return entry


def describe_tool(tool: ListedTool) -> dict[str, Any]:
    """One listed tool for ``--json``: its hash, its hints and the governance they suggest."""
    return {
        "name": tool.name,
        "description": tool.description,
        "schema_hash": tool.schema_hash,
        "annotations": {
            "readOnlyHint": tool.read_only,
            "destructiveHint": tool.destructive,
            "idempotentHint": tool.idempotent,
        },
        "side_effect": tool.side_effect.value,
        "idempotent": tool.is_idempotent,
        "args_schema": dict(tool.input_schema),
    }
