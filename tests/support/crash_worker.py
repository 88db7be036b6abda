"""A worker process for the crash test: durable side effects in an append-only file.

Usage: python -m tests.support.crash_worker DATABASE_URL EFFECTS_FILE [--drain]

``pay`` is idempotent (it looks for its key in the file before acting); ``notify`` is not (it
appends every time it runs), so a double execution would show as a repeated line.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.platform import Platform
from agent.tools.base import ToolContext, ToolSpec
from agent.tools.python import PythonTool
from agent.tools.registry import ToolRegistry
from agent.worker import Worker
from storage.engine import create_engine
from storage.enums import SideEffect

_lock = threading.Lock()


def registry(effects: Path) -> ToolRegistry:
    def append(line: str) -> None:
        with _lock, effects.open("a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def lookup(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        time.sleep(0.01)
        return {"amount": 40.0}

    def pay(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        time.sleep(0.02)
        with _lock:
            done = effects.exists() and f"pay {ctx.idempotency_key}\n" in effects.read_text()
        if not done:
            append(f"pay {ctx.idempotency_key}")
        time.sleep(0.02)
        return {"paid": True}

    def notify(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        time.sleep(0.02)
        append(f"notify {ctx.idempotency_key}")
        time.sleep(0.02)
        return {"sent": True}

    obj = {"type": "object"}
    reg = ToolRegistry()
    reg.register_tool(PythonTool(ToolSpec("lookup", "Look up.", obj), lookup))
    reg.register_tool(PythonTool(ToolSpec("pay", "Pay.", obj, obj, SideEffect.WRITE, True), pay))
    reg.register_tool(
        PythonTool(ToolSpec("notify", "Notify.", obj, obj, SideEffect.WRITE, False), notify)
    )
    return reg


def main() -> None:
    url, effects = sys.argv[1], Path(sys.argv[2])
    worker = Worker(
        Platform(create_engine(url), registry(effects)),
        concurrency=2,
        lease_s=1.0,
        poll_s=0.05,
        inline_tools=True,
    )
    if "--drain" in sys.argv:
        worker.drain(timeout_s=120)
        return
    worker.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
