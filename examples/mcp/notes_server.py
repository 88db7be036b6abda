"""A small MCP server to govern with Steward: notes about customers, kept in a JSON file.

Run it yourself over stdio (Steward starts it: ``command: [python, examples/mcp/notes_server.py]``)
or over HTTP with ``python examples/mcp/notes_server.py --http 8800``.

Tools: ``read_notes`` (read-only), ``add_note`` (additive, idempotent by the caller's
idempotency key, which Steward sends in ``_meta``) and ``delete_notes`` (no annotations: Steward
treats it as irreversible until your version says otherwise).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

STORE = Path(os.environ.get("NOTES_FILE", "notes.json"))
server = MCPServer("notes")


def _load() -> dict[str, Any]:
    return json.loads(STORE.read_text()) if STORE.exists() else {"notes": [], "keys": []}


def _save(data: dict[str, Any]) -> None:
    STORE.write_text(json.dumps(data, indent=2))


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def read_notes(customer_id: str) -> dict[str, Any]:
    """The notes kept about a customer."""
    return {"notes": [n["text"] for n in _load()["notes"] if n["customer_id"] == customer_id]}


@server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True))
def add_note(customer_id: str, text: str, ctx: Context) -> dict[str, Any]:
    """Add a note about a customer (a repeated call with the same idempotency key adds nothing)."""
    key = str((ctx.request_context.meta or {}).get("steward/idempotency-key", ""))
    data = _load()
    if not key or key not in data["keys"]:
        data["notes"].append({"customer_id": customer_id, "text": text})
        data["keys"].append(key)
        _save(data)
    return {"customer_id": customer_id, "added": True}


@server.tool()
def delete_notes(customer_id: str) -> dict[str, Any]:
    """Delete every note about a customer."""
    data = _load()
    before = len(data["notes"])
    data["notes"] = [n for n in data["notes"] if n["customer_id"] != customer_id]
    _save(data)
    return {"customer_id": customer_id, "deleted": before - len(data["notes"])}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
