"""Policy replay throughput: decisions replayed per second on a large recorded history.

The demo's sample tasks run once on support v1 (so every decision carries the record of what it
read), then their runs, decisions and ledger rows are copied until the history holds
``STEWARD_BENCH_DECISIONS`` recorded decisions (default 100,000). Support v2 is replayed on it,
as ``steward policy replay support --candidate 2`` would. Target: at least 10,000 decisions per
second on this machine.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sqlalchemy as sa
from _table import print_table

from agent.actors import Actor
from agent.demo.seed import seed_demo
from agent.platform import Platform
from agent.plugins import installed_registry
from agent.release.replay import replay_policy
from agent.runtime.claims import claim_next
from agent.runtime.runner import RunProcessor
from storage import migrate
from storage.engine import create_engine, write_connection
from storage.enums import StepKind
from storage.tables import RUNS, STEPS

DECISIONS = int(os.environ.get("STEWARD_BENCH_DECISIONS", "100000"))
TARGET_PER_S = 10_000.0
ENGINEER = Actor.of("erin", ["engineer"])


def build_history(platform: Platform, decisions: int) -> int:
    """Run the demo's sample traffic once, then copy it until ``decisions`` are recorded;
    returns how many decisions the history holds."""
    seed_demo(platform, with_tasks=True, with_evaluations=False)
    processor = RunProcessor(platform, lease_s=60)
    while (claim := claim_next(platform.engine, "bench")) is not None:
        processor.process(claim)
    engine = platform.engine
    with engine.connect() as connection:
        support = connection.execute(
            sa.text("SELECT id FROM agents WHERE name = 'support'")
        ).scalar_one()
        runs = [
            dict(r._mapping)
            for r in connection.execute(sa.select(RUNS).where(RUNS.c.agent_id == support))
        ]
        steps = [
            dict(s._mapping)
            for s in connection.execute(
                sa.select(STEPS)
                .where(STEPS.c.run_id.in_([r["id"] for r in runs]))
                .where(STEPS.c.kind == StepKind.APPLY_GUARDRAIL)
            )
        ]
    per_copy = len(steps)
    copies = max(decisions // per_copy - 1, 0)
    with write_connection(engine) as connection:
        next_run = connection.execute(sa.select(sa.func.max(RUNS.c.id))).scalar_one() + 1
        # Copied runs keep their task: a replay reads a run's task input from it.
        for _ in range(copies):
            mapping = {}
            new_runs = []
            for run in runs:
                mapping[run["id"]] = next_run
                new_runs.append({**run, "id": next_run})
                next_run += 1
            connection.execute(sa.insert(RUNS), new_runs)
            connection.execute(
                sa.insert(STEPS),
                [
                    {
                        **{k: v for k, v in step.items() if k != "id"},
                        "run_id": mapping[step["run_id"]],
                        "parent_id": None,
                    }
                    for step in steps
                ],
            )
    return per_copy * (copies + 1)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="steward-bench-replay-"))
    engine = create_engine(f"sqlite:///{folder / 'replay.db'}")
    migrate.upgrade(engine)
    platform = Platform(engine, installed_registry())
    try:
        started = time.perf_counter()
        held = build_history(platform, DECISIONS)
        built_s = time.perf_counter() - started
        started = time.perf_counter()
        report = replay_policy(platform, ENGINEER, "support", candidate_version=2)
        replay_s = time.perf_counter() - started
    finally:
        platform.close()
        engine.dispose()
    rate = report.decisions / replay_s
    print(
        f"history: {held:,} recorded decisions built in {built_s:.1f} s; "
        f"{report.replayed:,} replayed, {report.flipped:,} flipped"
    )
    print_table(
        ["measure", "decisions", "seconds", "decisions/s", "target", "verdict"],
        [
            [
                "replay support v2 on SQLite",
                report.decisions,
                replay_s,
                rate,
                f">= {TARGET_PER_S:,.0f}/s",
                "PASS" if rate >= TARGET_PER_S else "FAIL",
            ]
        ],
    )


if __name__ == "__main__":
    main()
