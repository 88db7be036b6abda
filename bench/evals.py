"""Evaluation throughput: the demo support suite run on the support agent's active version.

Every case goes through what ``steward evals run`` does: a sandbox SQLite file filled with the
demo's seed records, the real run loop of the version (planner, mediation with its CEL policy
and facts, the action ledger, the trace), the scripted reviewer answering reviews through the
real review service, and the expectations checked against the trace and the sandbox. Cases per
second are measured at concurrency 1 and 4 (cases run side by side, each in its own sandbox).

``STEWARD_BENCH_EVAL_CASES`` keeps the suite's first N cases (default: all of them);
``STEWARD_BENCH_EVAL_ROUNDS`` runs each concurrency that many times and reports the best round
(default 2), since a shared machine's speed drifts from one minute to the next.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import yaml
from _table import print_table

from agent.actors import Actor
from agent.demo.release import suite_yaml
from agent.demo.seed import seed_demo
from agent.demo.tasks import SUPPORT
from agent.evals.service import evaluation_results, run_evaluation
from agent.evals.suites import create_suite
from agent.platform import Platform
from agent.plugins import installed_registry
from storage import migrate
from storage.engine import create_engine

ENGINEER = Actor.of("bench-engineer", ["engineer"])
SUITE = "bench-support"
CONCURRENCY = (1, 4)


def _setting(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, str(default))
    value = int(raw) if raw.isdigit() else -1
    if not low <= value <= high:
        raise SystemExit(f"{name} must be between {low} and {high}, not {raw!r}")
    return value


def suite_text(cases: int | None) -> str:
    """The demo support suite, cut to its first ``cases`` cases."""
    document = yaml.safe_load(suite_yaml(SUPPORT))
    if cases is not None:
        document["cases"] = document["cases"][:cases]
    return yaml.safe_dump(document, sort_keys=False)


def main() -> None:
    full = len(yaml.safe_load(suite_yaml(SUPPORT))["cases"])
    cases = _setting("STEWARD_BENCH_EVAL_CASES", full, 1, full)
    rounds = _setting("STEWARD_BENCH_EVAL_ROUNDS", 2, 1, 10)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'steward.db'}")
        try:
            migrate.upgrade(engine)
            platform = Platform(engine, installed_registry())
            seed_demo(platform, with_tasks=False, with_evaluations=False)
            create_suite(platform, ENGINEER, SUPPORT, SUITE, suite_text(cases))
            for concurrency in CONCURRENCY:
                best: tuple[float, int, list[float]] | None = None
                for _ in range(rounds):
                    started = time.perf_counter()
                    (info,) = run_evaluation(
                        platform, ENGINEER, SUPPORT, suite=SUITE, concurrency=concurrency
                    )
                    seconds = time.perf_counter() - started
                    _info, results = evaluation_results(platform, ENGINEER, info.id)
                    durations = [r.duration_ms or 0.0 for r in results]
                    if best is None or seconds < best[0]:
                        best = (seconds, info.passed, durations)
                assert best is not None
                seconds, passed, durations = best
                rows.append(
                    (
                        f"support suite, concurrency {concurrency}",
                        cases,
                        f"{passed}/{cases}",
                        seconds,
                        cases / seconds,
                        statistics.median(durations),
                    )
                )
        finally:
            engine.dispose()
    print(f"Evaluation throughput (best of {rounds} rounds, SQLite, playbook planner)")
    print_table(("evaluation", "cases", "passed", "seconds", "cases/s", "case p50 ms"), rows)
    if len(rows) == len(CONCURRENCY):
        print(f"speed-up at concurrency {CONCURRENCY[-1]}: {rows[-1][4] / rows[0][4]:.2f}x")


if __name__ == "__main__":
    main()
