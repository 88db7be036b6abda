"""An agent built elsewhere, calling a Steward agent's tools through ``steward gateway``.

    STEWARD_GATEWAY_TOKEN=stw_... python examples/mcp/gateway_client.py [http://127.0.0.1:8765/mcp]

It lists the tools, reads and adds a note, then asks to delete the notes: Steward's policy
escalates that call, so the client gets "waiting_for_approval" with a review id and polls
``steward_review_status`` until a person decides in the console (Queue) or with
``steward reviews approve ID``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        tools = await client.list_tools()
        print("tools:", ", ".join(tool.name for tool in tools.tools))
        for name, args in [
            ("read_notes", {"customer_id": "C-1"}),
            ("add_note", {"customer_id": "C-1", "text": "asked for a refund"}),
            ("delete_notes", {"customer_id": "C-1"}),
        ]:
            result = await client.call_tool(name, args)
            while (result.structured_content or {}).get("status") == "waiting_for_approval":
                review_id = result.structured_content["review_id"]
                print(f"{name}: waiting for a person to decide review {review_id}...")
                await asyncio.sleep(5)
                result = await client.call_tool("steward_review_status", {"review_id": review_id})
            verdict = "refused" if result.is_error else "->"
            print(name, verdict, json.dumps(result.structured_content))


if __name__ == "__main__":
    endpoint = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8765/mcp"
    asyncio.run(main(endpoint, os.environ["STEWARD_GATEWAY_TOKEN"]))
