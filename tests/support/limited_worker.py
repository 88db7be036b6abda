"""A worker process for the shared rate-limit test: it runs until SIGTERM, then stops cleanly
(so its row records how many runs it processed).

Usage: python -m tests.support.limited_worker DATABASE_URL CALLS_FILE

``lookup`` takes a moment, so that two workers started together share the queue; ``notify``
appends ``PID KEY`` to CALLS_FILE each time it really runs.
"""

from __future__ import annotations

import os
import signal
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

LOOKUP_S = 0.3


def registry(calls: Path) -> ToolRegistry:
    lock = threading.Lock()

    def lookup(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        time.sleep(LOOKUP_S)
        return {"found": True}

    def notify(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        with lock, calls.open("a") as handle:
            handle.write(f"{os.getpid()} {ctx.idempotency_key}\n")
        return {"sent": True}

    obj = {"type": "object"}
    reg = ToolRegistry()
    reg.register_tool(PythonTool(ToolSpec("lookup", "Look up.", obj), lookup))
    reg.register_tool(
        PythonTool(ToolSpec("notify", "Notify.", obj, obj, SideEffect.WRITE, False), notify)
    )
    return reg


def main() -> None:
    url, calls = sys.argv[1], Path(sys.argv[2])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = Worker(
        Platform(create_engine(url), registry(calls)),
        concurrency=1,
        lease_s=30,
        poll_s=0.05,
        inline_tools=True,
    )
    worker.start()
    stop.wait()
    worker.stop()


if __name__ == "__main__":
    main()
