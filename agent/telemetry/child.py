"""The export's own process: ``python -m agent.telemetry.child``, started and watched by a worker.

A worker that exports traces runs the export here rather than in one of its threads: building
and encoding spans is Python work that would take the interpreter lock from the threads that
drive runs. The process lowers its scheduling priority, so where the CPUs are busy the export
falls behind (the backlog gauge shows by how much) rather than slowing runs. It is a plain
child process, not a ``multiprocessing`` one: those import the parent's main module again,
which in the console is the Streamlit app itself.

The database URL comes in ``STEWARD_DATABASE_URL`` (never on the command line, where ``ps``
shows it); the OTLP exporter reads the standard ``OTEL_*`` variables. The process stops on
SIGTERM, and by itself once its parent is gone.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from agent.telemetry.export import export_turn

NICENESS = 10
log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.telemetry.child")
    parser.add_argument("--owner", required=True, help="the worker this export belongs to")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between turns")
    args = parser.parse_args(argv)
    url = os.environ.get("STEWARD_DATABASE_URL", "")
    if not url:
        parser.error(
            "STEWARD_DATABASE_URL is not set; the worker that starts this process sets it."
        )
    if hasattr(os, "nice"):
        os.nice(NICENESS)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:
        try:
            export_turn(url, args.owner)
        except Exception:
            log.exception("trace export turn failed; the next one is in %.1f s", args.interval)
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":  # pragma: no cover - started by agent.worker
    sys.exit(main())
