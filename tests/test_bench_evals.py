"""``bench/evals.py`` runs end to end on a few cases and prints its table (figures are not
checked: speed targets live in the benchmark, not in tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "evals.py"


def _bench(cases: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH)],
        env={**os.environ, "STEWARD_BENCH_EVAL_CASES": cases, "STEWARD_BENCH_EVAL_ROUNDS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_evals_bench_prints_a_row_per_concurrency() -> None:
    result = _bench("3")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("support suite")]
    assert [row[3] for row in rows] == ["1", "4"]  # "support suite, concurrency N"
    assert [(row[4], row[5]) for row in rows] == [("3", "3/3"), ("3", "3/3")]
    assert all(float(row[7]) > 0 for row in rows)  # cases per second were measured
    assert "speed-up at concurrency 4:" in result.stdout


def test_evals_bench_refuses_a_case_count_out_of_range() -> None:
    result = _bench("0")
    assert result.returncode == 1
    assert "STEWARD_BENCH_EVAL_CASES must be between 1 and" in result.stderr
