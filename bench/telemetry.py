"""What the trace export costs the governed run rate: the same runs with and without it.

One SQLite database, the demo refund path of ``bench/runtime.py`` run by the governed loop in
one thread. The runs take turns of 50 tasks, with and without the export beside them, in the
order without, with, with, without, ... (so neither always follows the other). For a turn with
it, the export is started as a worker runs it, in its own process (``agent.telemetry.child``,
every second where a worker waits 5 s), sending to an OTLP/HTTP collector stand-in in another
process, and the turn starts once it has caught up (a worker starts it once and keeps it);
for a turn without, it is stopped. Each pair of turns gives a ratio of times and the median
ratio is the cost, which shrugs off the minutes when other work slowed one turn of a shared
machine. Target: the export costs the run rate no more than 5%. ``STEWARD_BENCH_RUNS`` sets
the tasks (default 400, a multiple of 100).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sqlalchemy as sa
from _table import print_table
from runtime import prepare, refunds_paid, steward_governed
from sqlalchemy.engine import Engine

from agent.telemetry import cursor
from agent.telemetry.export import export_turn
from storage.engine import write_connection

RUNS = int(os.environ.get("STEWARD_BENCH_RUNS", "400"))
CHUNK = 50
INTERVAL_S = 1.0
TARGET_COST = 0.05
if not (RUNS % (2 * CHUNK) == 0 and 2 * CHUNK <= RUNS <= 3000):  # whole pairs of turns
    raise SystemExit(f"STEWARD_BENCH_RUNS must be a multiple of {2 * CHUNK} up to 3000")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ExportBeside:
    """The export as a worker runs it: its own process (``agent.telemetry.child``), every
    ``INTERVAL_S``, while switched on."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.child: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, engine: Engine) -> None:
        """Start the export process and wait (not counted) until it has caught up: a worker
        starts it once and keeps it."""
        if self.child is None:
            self.child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agent.telemetry.child",
                    "--owner",
                    "bench",
                    "--interval",
                    str(INTERVAL_S),
                ],
                env={**os.environ, "STEWARD_DATABASE_URL": self.url},
            )
            self.starts += 1
            while cursor.backlog(engine).steps:
                assert self.child.poll() is None, "the export process ended"
                time.sleep(0.05)

    def pause(self) -> None:
        """Stop the export process (it ends the turn it is in first; not counted)."""
        if self.child is not None:
            self.child.terminate()
            self.child.wait()
            self.child = None


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
            run_cpu = 0.0
            for n, first in enumerate(range(0, RUNS, CHUNK)):
                # Pairs of turns, the export first in every other pair: without, with, with,
                # without, ...; so neither side always runs just after the other.
                exporting = n % 4 in (1, 2)
                if exporting:
                    beside.start(engine)
                else:
                    beside.pause()
                cpu = time.process_time()
                spent = steward_governed(engine, range(first, min(first + CHUNK, RUNS)))
                run_cpu += time.process_time() - cpu
                turns.append((exporting, spent))
                seconds[exporting].append(spent)
            beside.pause()
            behind_after_runs = cursor.backlog(engine)
            started = time.perf_counter()
            export_turn(beside.url, "bench")  # what the last turns left behind
            drain_s = time.perf_counter() - started
            assert refunds_paid(engine) == RUNS
            behind = cursor.backlog(engine)
            # The export's own cost, in CPU time: every run sent again, in this process (a
            # repeat is the same spans).
            with write_connection(engine) as connection:
                connection.execute(sa.delete(cursor.EXPORTS))
                connection.execute(sa.update(cursor.CURSORS).values(low_water_run_id=0))
            cpu = time.process_time()
            again = export_turn(beside.url, "bench")
            export_cpu = time.process_time() - cpu
            assert again.sent_segments == RUNS
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
        f"{INTERVAL_S} s in its own process (nice 10) beside the runs during every other turn\n"
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
        f"{TARGET_COST * 100:.0f}%: {verdict})\nthe export process started {beside.starts} "
        f"times; {behind_after_runs.steps} steps left behind by the last turns, sent in "
        f"{drain_s * 1000:.0f} ms; backlog after: {behind.steps} steps"
    )
    print(
        f"CPU time per task: the governed run {run_cpu / RUNS * 1000:.2f} ms, its export "
        f"{export_cpu / RUNS * 1000:.2f} ms ({export_cpu / run_cpu * 100:.1f}% of the run's; the "
        f"export's share of a machine with no CPU to spare), {again.sent_spans / RUNS:.1f} spans"
    )


if __name__ == "__main__":
    main()
