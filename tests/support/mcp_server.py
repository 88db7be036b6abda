"""A small real MCP server for the tests (the SDK's own ``MCPServer``), over stdio or HTTP.

``python -m tests.support.mcp_server`` serves stdio; ``--http PORT`` serves streamable HTTP on
127.0.0.1. Tools: ``lookup_order`` (read-only), ``add_note`` (additive, idempotent by the
caller's idempotency key), ``refund`` (no annotations: irreversible), ``crash`` (the process
exits mid-call), ``slow`` and ``echo_token`` (returns the ``API_TOKEN`` variable, to prove it is
redacted). Every effect is one JSON line in ``$EFFECTS_FILE`` with the idempotency key it came
with. ``VARIANT=changed`` adds an argument to ``lookup_order`` (a changed schema).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

IDEMPOTENCY_META_KEY = "steward/idempotency-key"
server = MCPServer("test-shop")


def _key(ctx: Context) -> str:
    meta = ctx.request_context.meta or {}
    return str(meta.get(IDEMPOTENCY_META_KEY, ""))


def _effects() -> list[dict[str, Any]]:
    path = Path(os.environ["EFFECTS_FILE"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _record(effect: dict[str, Any]) -> None:
    with Path(os.environ["EFFECTS_FILE"]).open("a") as file:
        file.write(json.dumps(effect) + "\n")


if os.environ.get("VARIANT") == "changed":

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def lookup_order(order_id: str, include_history: bool = False) -> dict[str, Any]:
        """Look up an order (with its history)."""
        return {"order_id": order_id, "status": "shipped", "history": include_history}

else:

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def lookup_order(order_id: str) -> dict[str, Any]:
        """Look up an order."""
        return {"order_id": order_id, "status": "shipped"}


@server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True))
def add_note(order_id: str, text: str, ctx: Context) -> dict[str, Any]:
    """Add a note to an order (a repeated idempotency key adds nothing)."""
    key = _key(ctx)
    if not any(e["key"] == key for e in _effects() if e["tool"] == "add_note"):
        _record({"tool": "add_note", "key": key, "order_id": order_id, "text": text})
    return {"order_id": order_id, "noted": True, "key": key}


@server.tool()
def refund(order_id: str, amount: float, ctx: Context) -> dict[str, Any]:
    """Refund an amount to the customer."""
    _record({"tool": "refund", "key": _key(ctx), "order_id": order_id, "amount": amount})
    return {"order_id": order_id, "refunded": amount}


@server.tool()
def crash(ctx: Context) -> dict[str, Any]:
    """Exit the server process in the middle of the call."""
    _record({"tool": "crash", "key": _key(ctx)})
    sys.stdout.flush()
    os._exit(3)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def slow(seconds: float) -> dict[str, Any]:
    """Answer after a while."""
    time.sleep(seconds)
    return {"slept": seconds}


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def echo_token() -> dict[str, Any]:
    """Return the server's API token (a careless tool)."""
    return {"token": os.environ.get("API_TOKEN", "")}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
