"""What the trace export costs the governed run rate: the same runs with and without it.

One SQLite database, the demo refund path of ``bench/runtime.py`` run by the governed loop in
one thread. The runs take turns in chunks of 25 tasks: in one turn the export job runs beside
them every 0.25 s (a worker's default is every 5 s) as a worker runs it, in a child process
(``agent.telemetry.export.export_turn``), sending to an OTLP/HTTP collector stand-in in another
process; in the next turn it is paused. The rate
of each is its tasks over its summed time, so both see the same drift of a shared machine.
The export turns also send what the paused turns left behind, so the figure errs against the
export. Target: the export costs the run rate no more than 5%. ``STEWARD_BENCH_RUNS`` sets the
tasks (default 400, half with the export).
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _table import print_table
from runtime import _PLATFORMS, prepare, refunds_paid, steward_governed

from agent.telemetry import cursor
from agent.telemetry.export import export_turn

RUNS = int(os.environ.get("STEWARD_BENCH_RUNS", "400"))
CHUNK = 25
INTERVAL_S = 0.25
TARGET_COST = 0.05
if not (RUNS % (2 * CHUNK) == 0 and 2 * CHUNK <= RUNS <= 3000):
    raise SystemExit(f"STEWARD_BENCH_RUNS must be a multiple of {2 * CHUNK} up to 3000")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ExportBeside:
    """The export job in a child process, run every ``INTERVAL_S`` while switched on."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self.pool.submit(export_turn, url, "bench").result()  # the child starts and imports
        self.spans = 0
        self.idle = threading.Event()
        self.idle.set()
        self.on = threading.Event()
        self.stopped = threading.Event()
        self.turns = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            if self.on.wait(0.05) and not self.stopped.is_set():
                self.idle.clear()
                self.spans += self.pool.submit(export_turn, self.url, "bench").result().sent_spans
                self.turns += 1
                self.idle.set()
                self.stopped.wait(INTERVAL_S)

    def pause(self) -> None:
        """No export turn runs from now on (one in progress is waited for, uncounted)."""
        self.on.clear()
        self.idle.wait()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.pool.shutdown()


def main() -> None:
    port = _free_port()
    sink = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "_otlp_sink.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    seconds: dict[bool, list[float]] = {False: [], True: []}
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "telemetry.db"
            engine = prepare(path, RUNS)
            os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"http://127.0.0.1:{port}/v1/traces"
            os.environ["OTEL_SERVICE_NAME"] = "steward-bench"
            beside = ExportBeside(f"sqlite:///{path}")
            turns: list[tuple[bool, float]] = []
            for n, first in enumerate(range(0, RUNS, CHUNK)):
                # Pairs of turns, the export first in every other pair: without, with, with,
                # without, ...; so neither side always runs just after the other.
                exporting = n % 4 in (1, 2)
                if exporting:
                    beside.on.set()
                else:
                    beside.pause()
                spent = steward_governed(engine, range(first, min(first + CHUNK, RUNS)))
                turns.append((exporting, spent))
                seconds[exporting].append(spent)
            beside.pause()
            behind_after_runs = cursor.backlog(engine)
            started = time.perf_counter()
            left = beside.pool.submit(export_turn, beside.url, "bench").result()
            drain_s = time.perf_counter() - started
            beside.close()
            assert refunds_paid(engine) == RUNS
            behind = cursor.backlog(engine)
            sent, export_turns = beside.spans + left.sent_spans, beside.turns
            for platform in _PLATFORMS.values():
                platform.close()
            _PLATFORMS.clear()
            engine.dispose()
    finally:
        sink.terminate()
        sink.wait()

    tasks = {k: len(v) * CHUNK for k, v in seconds.items()}
    rate = {k: tasks[k] / sum(v) for k, v in seconds.items()}
    # Each turn with the export against the turn before it, without: the median of these pairs
    # shrugs off the minutes when other work on the machine slowed one turn.
    pairs = [
        (a if a_on else b) / (b if a_on else a)
        for (a_on, a), (_, b) in zip(turns[0::2], turns[1::2], strict=True)
    ]
    cost = statistics.median(pairs) - 1
    print(
        f"{RUNS} refund tasks in turns of {CHUNK}, one thread, SQLite (WAL); the export every "
        f"{INTERVAL_S} s in a child process (nice 10) beside the runs during every other turn\n"
    )
    print_table(
        ["governed runs", "tasks", "seconds", "tasks/s"],
        [
            ["without the export", tasks[False], sum(seconds[False]), rate[False]],
            ["with the export beside them", tasks[True], sum(seconds[True]), rate[True]],
        ],
    )
    verdict = "PASS" if cost <= TARGET_COST else "FAIL"
    print(
        f"\nexport cost on the run rate, median of {len(pairs)} pairs of turns: {cost * 100:.1f}% "
        f"(summed times: {(1 - rate[True] / rate[False]) * 100:.1f}%; target <= "
        f"{TARGET_COST * 100:.0f}%: {verdict})\n{sent} spans sent in {export_turns} export turns, "
        f"{behind_after_runs.steps} steps left behind by the last turns, sent in "
        f"{drain_s * 1000:.0f} ms; backlog after: {behind.steps} steps"
    )


if __name__ == "__main__":
    main()
