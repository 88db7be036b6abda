"""A counted limit holds across worker processes: the decision and its reservation are atomic.

Twenty refund tasks for one customer, two stock ``steward worker --drain`` processes with two
threads each: the demo's "at most 3 refunds per customer per day" pays exactly three. And a total
per run holds for the several calls one turn proposes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy.engine import URL, Engine
from sqlmodel import col, select

from storage.engine import create_engine, read_session
from storage.enums import ReviewKind, RunStatus
from storage.models import LimitReservation, Review, Run, SupportRefund
from tests.support.cli import ok, steward
from tests.support.runtime import install_agent, submit

TASKS = 20


def _drain_with_two_workers(engine: Engine) -> None:
    """Run two stock ``steward worker --drain --concurrency 2`` processes at once to the end."""
    environ = {
        **{k: v for k, v in os.environ.items() if k != "STEWARD_USER"},
        "STEWARD_DATABASE_URL": engine.url.render_as_string(hide_password=False),
    }
    command = [sys.executable, "-m", "console.cli", "worker", "--drain", "--concurrency", "2"]
    workers = [
        subprocess.Popen(
            command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for worker in workers:
        _out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err


@pytest.mark.slow
def test_two_worker_processes_pay_exactly_the_daily_limit(db_url: URL) -> None:
    engine = create_engine(db_url)
    try:
        ok(steward(engine, "db", "upgrade"))
        ok(steward(engine, "demo", "seed", "--no-tasks"))
        for n in range(TASKS):
            submit(
                engine,
                "support",
                {
                    "intent": "refund",
                    "customer_id": "C-1001",
                    "order_id": "O-5001",
                    "amount": 2.0,
                    "ticket_id": "T-9001",
                    "reason": f"request {n}",
                    "message": "Please refund two dollars.",
                },
            )
        environ = {
            **{k: v for k, v in os.environ.items() if k != "STEWARD_USER"},
            "STEWARD_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        }
        command = [sys.executable, "-m", "console.cli", "worker", "--drain", "--concurrency", "2"]
        workers = [
            subprocess.Popen(
                command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        for worker in workers:
            _out, err = worker.communicate(timeout=240)
            assert worker.returncode == 0, err
        with read_session(engine) as session:
            refunds = session.exec(
                select(SupportRefund).where(col(SupportRefund.customer_id) == "C-1001")
            ).all()
            statuses = Counter(run.status for run in session.exec(select(Run)).all())
            blocks = session.exec(select(Review).where(col(Review.kind) == ReviewKind.BLOCK)).all()
            reserved = session.exec(
                select(LimitReservation).where(col(LimitReservation.released_at).is_(None))
            ).all()
    finally:
        engine.dispose()
    assert len(refunds) == 3
    assert statuses == {RunStatus.SUCCEEDED: 3, RunStatus.WAITING_REVIEW: TASKS - 3}
    assert {b.rule_id for b in blocks} == {"refund-daily-limit"}
    assert len(blocks) == TASKS - 3  # a manager may still override each of them
    assert len(reserved) == 3


@pytest.mark.slow
def test_a_run_total_holds_for_the_parallel_calls_of_one_turn_on_two_workers(
    db_url: URL,
) -> None:
    """Each run proposes five $1 refunds in one turn against a $2.50 total per run."""
    engine = create_engine(db_url)
    try:
        ok(steward(engine, "db", "upgrade"))
        ok(steward(engine, "demo", "seed", "--no-tasks"))
        refund = {"customer_id": "C-1010", "order_id": "O-5010", "amount": 1.0, "reason": "r"}
        document = {
            "planner": {
                "kind": "scripted",
                "model": "script",
                "script": [
                    {
                        "reasoning": "five at once",
                        "calls": [{"tool": "issue_refund", "args": refund}] * 5,
                    },
                    {"final": {"resolution": "resolved", "summary": "Refunded what I could."}},
                ],
            },
            "tools": ["issue_refund"],
            "policy": {
                "default": "allow",
                "counters": [
                    {
                        "id": "run_total",
                        "tool": "issue_refund",
                        "window": "run",
                        "sum": "args.amount",
                    }
                ],
                "rules": [
                    {
                        "id": "run-total",
                        "tool": "issue_refund",
                        "when": "counters.run_total + args.amount > 2.5",
                        "effect": "deny",
                        "reason": "a run refunds at most $2.50",
                    }
                ],
            },
            "budgets": {"max_denials": 10},
        }
        install_agent(engine, "bulk", document)
        runs = 4
        for _ in range(runs):
            submit(engine, "bulk", {"customer_id": "C-1010"})
        _drain_with_two_workers(engine)
        with read_session(engine) as session:
            refunds = session.exec(select(SupportRefund)).all()
            statuses = Counter(run.status for run in session.exec(select(Run)).all())
    finally:
        engine.dispose()
    assert Counter(r.run_id for r in refunds) == dict.fromkeys(range(1, runs + 1), 2)
    assert statuses == {RunStatus.SUCCEEDED: runs}
