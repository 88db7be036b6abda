"""``bench/runtime.py`` still runs end to end and prints its tables (figures are not checked:
speed targets live in the benchmark, not in tests)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "runtime.py"


def _bench(runs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH)],
        env={**os.environ, "STEWARD_BENCH_RUNS": runs},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_runtime_bench_prints_every_system_and_the_mediation_table() -> None:
    result = _bench("25")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    steward = [line for line in lines if line.startswith("Steward (policy, ledger, full trace)")]
    assert [line.split()[5] for line in steward] == ["NORMAL", "FULL"]
    assert all(float(line.split()[6]) > 0 for line in steward)  # tasks/s were measured
    assert any(line.startswith("authorize: scope, arguments, policy") for line in lines)
    graph = [line for line in lines if line.startswith("LangGraph + SqliteSaver")]
    assert len(graph) == 2
    ratios = [line for line in lines if line.startswith("Steward / LangGraph")]
    if importlib.util.find_spec("langgraph") is None:
        assert all("not installed" in line for line in graph)
        assert ratios == []
    else:
        assert len(ratios) == 3
        assert sum(("PASS" in line or "FAIL" in line) for line in ratios) == 2


def test_runtime_bench_refuses_a_run_count_out_of_range() -> None:
    result = _bench("5")
    assert result.returncode == 1
    assert "STEWARD_BENCH_RUNS must be between 25 and 3000" in result.stderr
