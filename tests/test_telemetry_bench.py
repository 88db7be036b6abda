"""``bench/telemetry.py`` still runs end to end and prints its table and verdict (figures are
not checked: speed targets live in the benchmark, not in tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "telemetry.py"


def test_the_export_cost_bench_prints_both_rates_and_a_verdict() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH)],
        env={**os.environ, "STEWARD_BENCH_RUNS": "100"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    without = next(line for line in lines if line.startswith("without the export"))
    beside = next(line for line in lines if line.startswith("with the export beside them"))
    assert without.split()[3] == beside.split()[5] == "50"  # tasks of each kind
    verdict = next(line for line in lines if line.startswith("export cost on the run rate"))
    assert "PASS" in verdict or "FAIL" in verdict
    assert lines[-2].endswith("backlog after: 0 steps")  # everything was sent in the end
    assert lines[-1].startswith("CPU time per task: the governed run")


def test_a_run_count_the_turns_cannot_pair_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH)],
        env={**os.environ, "STEWARD_BENCH_RUNS": "150"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "STEWARD_BENCH_RUNS must be a multiple of 100" in result.stderr
