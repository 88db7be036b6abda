"""A pinned tool of an MCP server as a governed Steward tool.

Its argument schema is the one the version pinned (copied from the server when it was
inspected), its side-effect class, idempotency and data sources are the version's, and each call
goes through the process's ``McpConnections`` with the call's idempotency key in ``_meta``. The
gate, the ledger and the trace treat it as any other tool: they only see the ``Tool`` protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.errors import FenceLost
from agent.spec import McpServerDef, McpToolPin
from agent.tools.base import ToolContext, ToolSpec
from agent.tools.mcp.connections import McpCall, McpConnections


def mcp_tool_spec(server: McpServerDef, pin: McpToolPin) -> ToolSpec:
    """What governance needs to know of a pinned MCP tool (no connection needed to read it)."""
    return ToolSpec(
        name=pin.name,
        description=pin.description or f"{pin.remote_name} on MCP server {server.name}",
        args_schema=pin.args_schema,
        side_effect=pin.side_effect,
        idempotent=pin.idempotent,
        data_sources=pin.data_sources,
        compensating_tool=pin.compensating_tool,
    )


class McpTool:
    """Calls one pinned tool of one MCP server.

    Args:
        server: the server definition from the version.
        pin: the pinned tool.
        connections: the process's MCP connections.
    """

    def __init__(self, server: McpServerDef, pin: McpToolPin, connections: McpConnections) -> None:
        self.server = server
        self.pin = pin
        self.connections = connections
        self._spec = mcp_tool_spec(server, pin)

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    def call(self, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Call the tool on its server; see ``McpConnections.call`` for the errors."""
        if ctx.cancelled.is_set():
            raise FenceLost(f"{self.pin.name}: the call outlived its timeout and was not sent")
        timeout = ctx.timeout_s
        if self.server.timeout_s is not None:
            timeout = min(timeout, self.server.timeout_s)
        call = McpCall(
            server=self.server,
            pin=self.pin,
            args=args,
            timeout_s=timeout,
            idempotency_key=ctx.idempotency_key,
            fencing_token=ctx.fence.token if ctx.fence is not None else None,
        )
        return self.connections.call(call, ctx.cancelled)

    def __repr__(self) -> str:
        return f"McpTool({self.pin.name!r} on {self.server.name!r})"
