"""Console responsiveness at volume: the review queue, a run's page and the KPIs, on SQLite.

Seeds 100,000 runs, 1,000,000 trace steps and 5,000 pending reviews into a SQLite file
(cached under ``data/bench/``, keyed by the row counts, the schema revision, the seed format
and the day, so a second ``make bench`` starts timing at once), then times ``AppTest`` runs of
``console/app.py`` signed in: the queue and a run as an operator, the KPIs as a manager.

Each view is rendered once to warm up (imports, and AppTest's one-off scan of installed
packages, which a server does once at start), then ``REPEAT`` times with ``st.cache_data``
cleared ("cold": the database does all the work; the targets apply to this), each followed by a
rerun with the caches kept ("warm": what looking again costs). Times are server time: the
script run, from the router to the last element.

``STEWARD_BENCH_RUNS`` scales the volume down for a quick look (steps and pending reviews
follow); ``STEWARD_BENCH_REPEAT`` sets the repetitions.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def _without_bench(paths: list[str]) -> list[str]:
    return [p for p in paths if Path(p or os.getcwd()).resolve() != BENCH]


# This file shares its name with the ``console`` package it renders: while this folder is on
# sys.path, ``import console`` finds this file instead of the package. So the folder is on the
# path only while the benchmark's own helpers are imported.
sys.path.insert(0, str(BENCH))
try:
    from _console_seed import SEED_FORMAT, STEPS_PER_RUN, Shape, seed
    from _table import print_table
finally:
    sys.path[:] = _without_bench(sys.path)

import streamlit as st
from streamlit import logger
from streamlit.testing.v1 import AppTest

from storage import migrate
from storage.engine import create_engine
from storage.types import utcnow

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "console" / "app.py")
CACHE = ROOT / "data" / "bench"
RUNS = int(os.environ.get("STEWARD_BENCH_RUNS", "100000"))
REPEAT = int(os.environ.get("STEWARD_BENCH_REPEAT", "5"))
SHAPE = Shape(runs=RUNS, pending=max(1, RUNS // 20), decided=RUNS * 3 // 20)


@dataclass(frozen=True)
class Scenario:
    """One page as one user sees it, and how fast it must render."""

    name: str
    user: str
    page: str
    target_s: float | None  # None: timed for information, no target set
    state: dict[str, object] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


def scenarios() -> list[Scenario]:
    # A run that waits for a person: a full trace, a pending review, ledger rows.
    waiting_run = SHAPE.runs - SHAPE.pending // 2
    decided_run = SHAPE.runs // 2
    return [
        Scenario("review queue", "olga", "queue.py", 0.5),
        Scenario(
            "run (waiting for review)", "olga", "run.py", 0.5, query={"run": str(waiting_run)}
        ),
        Scenario("run (finished)", "olga", "run.py", 0.5, query={"run": str(decided_run)}),
        Scenario("KPIs (default: last 7 days)", "mona", "kpis.py", 2.0),
        Scenario("KPIs (all time)", "mona", "kpis.py", 2.0, state={"kpis.range": "All time"}),
        Scenario(
            "KPIs (one agent, 30 days)",
            "mona",
            "kpis.py",
            2.0,
            state={"kpis.range": "Last 30 days", "kpis.agent": "support"},
        ),
        # The side-by-side panel is behind a toggle and computes two more reports.
        Scenario(
            "KPIs + version comparison (one agent, all time)",
            "mona",
            "kpis.py",
            None,
            state={"kpis.range": "All time", "kpis.agent": "support", "kpis.compare": True},
        ),
    ]


def database() -> tuple[Path, str]:
    """The seeded SQLite file (seeding it now if today's is not cached) and how it was got."""
    name = (
        f"console-{SHAPE.runs}r-{SHAPE.steps}s-{SHAPE.pending}p-"
        f"{migrate.head_revision()}-f{SEED_FORMAT}-{utcnow():%Y%m%d}.db"
    )
    path = CACHE / name
    if path.exists():
        return path, "cached"
    CACHE.mkdir(parents=True, exist_ok=True)
    # The data spans the 30 days before seeding: an old file would leave "last 7 days" empty.
    for old in CACHE.glob(f"console-{SHAPE.runs}r-*"):
        old.unlink()
    partial = path.with_suffix(".partial")
    for leftover in CACHE.glob(partial.name + "*"):
        leftover.unlink()
    engine = create_engine(f"sqlite:///{partial}")
    started = time.perf_counter()
    try:
        seed(engine, SHAPE, now=utcnow())
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    partial.rename(path)
    return path, f"seeded in {time.perf_counter() - started:.0f} s"


def measure(url: str, scenario: Scenario) -> tuple[list[float], list[float], str]:
    """Cold and warm render times in seconds, and the first failure seen (empty if none)."""
    os.environ["STEWARD_DATABASE_URL"] = url
    os.environ["STEWARD_EMBEDDED_WORKER"] = "0"
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["auth.user"] = {"name": scenario.user}
    for key, value in scenario.state.items():
        at.session_state[key] = value
    for key, value in scenario.query.items():
        at.query_params[key] = value
    at.switch_page(f"views/{scenario.page}")
    # The first run pays once for what a server does at start: imports, and AppTest's scan of
    # installed packages for components (about 0.4 s). It is not timed.
    at.run()
    failure = _failure(at)
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(REPEAT):
        # Outside a server, clearing caches and rendering log a warning per call, and each
        # run resets the level from the config; the table below is the output.
        logger.set_log_level("error")
        st.cache_data.clear()
        started = time.perf_counter()
        at.run()
        cold.append(time.perf_counter() - started)
        failure = failure or _failure(at)
        started = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - started)
        failure = failure or _failure(at)
    return cold, warm, failure


def _failure(at: AppTest) -> str:
    if at.exception:
        return "exception: " + str(at.exception[0].message).splitlines()[0][:80]
    if at.error:
        return "error shown: " + str(at.error[0].value).splitlines()[0][:80]
    return ""


def main() -> None:
    logger.set_log_level("error")
    path, how = database()
    url = f"sqlite:///{path}"
    print(
        f"SQLite {path.stat().st_size / 1e6:,.0f} MB ({how}): {SHAPE.runs:,} runs, "
        f"{SHAPE.runs * STEPS_PER_RUN:,} steps, {SHAPE.pending:,} pending reviews; "
        f"{REPEAT} timed renders per view"
    )
    rows: list[list[object]] = []
    for scenario in scenarios():
        cold, warm, failure = measure(url, scenario)
        worst = max(cold)
        if scenario.target_s is None:
            verdict = "info"
        else:
            verdict = "PASS" if worst < scenario.target_s else "FAIL"
        rows.append(
            [
                scenario.name,
                "-" if scenario.target_s is None else scenario.target_s,
                statistics.median(cold),
                worst,
                statistics.median(warm),
                f"FAIL {failure}" if failure else verdict,
            ]
        )
    print_table(
        ["view", "target s", "cold median s", "cold max s", "warm median s", "result"], rows
    )


if __name__ == "__main__":
    main()
