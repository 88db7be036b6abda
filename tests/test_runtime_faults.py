"""A tool that fails 40% and hangs 20% of the time (a call, with its retry, fails about a third of
the time): defined outcomes, an open circuit, and no harm to the other tools."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.tools.base import ToolContext, ToolSpec
from agent.tools.faults import FaultyTool
from agent.tools.python import PythonTool
from storage.engine import read_session
from storage.enums import (
    CircuitState,
    ErrorClass,
    RunStatus,
    StepKind,
    TaskStatus,
    ToolCallStatus,
)
from storage.models import CircuitBreaker, Run, Step, Task, ToolCall
from tests.support.runtime import Effects, drive, install_agent, scripted_version, shop_registry

RUNS = 40


def _quote(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"price": 12.5}


def test_flaky_tool_is_contained(engine: Engine) -> None:
    quote = FaultyTool(
        PythonTool(
            ToolSpec(
                "quote", "Get a shipping quote.", {"type": "object"}, data_sources=("orders",)
            ),
            _quote,
        ),
        fail_rate=0.4,
        hang_rate=0.2,
        hang_s=0.5,
        seed=11,
    )
    registry = shop_registry(Effects(), flaky=quote)  # type: ignore[arg-type]
    document = scripted_version(
        [
            {"reasoning": "look up", "calls": [{"tool": "lookup", "args": {"order_id": "O1"}}]},
            {"reasoning": "quote", "calls": [{"tool": "quote", "args": {}}]},
            {"reasoning": "done", "final": {"resolution": "answered"}},
        ],
        tools=["lookup", "quote"],
        budgets={"call_timeout_s": 0.2, "max_steps": 40},
        retries={
            "max_attempts": 2,
            "initial_backoff_s": 0.001,
            "max_backoff_s": 0.005,
            "jitter_s": 0.001,
        },
        circuit_breaker={
            "failure_threshold": 3,
            "failure_rate": 0.3,
            "window": 10,
            "min_calls": 5,
            "reset_after_s": 600,
        },
    )
    install_agent(engine, "flaky", document)
    from tests.support.runtime import submit

    for i in range(RUNS):
        submit(engine, "flaky", {"n": i})
    statuses = drive(engine, registry, max_claims=RUNS * 2)
    assert len(statuses) == RUNS

    with read_session(engine) as session:
        runs = session.exec(select(Run)).all()
        tasks = session.exec(select(Task)).all()
        ledger = session.exec(select(ToolCall)).all()
        observations = session.exec(
            select(Step).where(col(Step.kind) == StepKind.OBSERVATION)
        ).all()
        breaker = session.get(CircuitBreaker, "quote")
    # every run ended in a defined status; no task is left running
    assert {r.status for r in runs} <= {RunStatus.SUCCEEDED, RunStatus.ESCALATED, RunStatus.FAILED}
    assert all(t.status is not TaskStatus.RUNNING for t in tasks)
    # the healthy tool kept a perfect record
    lookups = [row for row in ledger if row.tool == "lookup"]
    assert len(lookups) == RUNS
    assert all(row.status is ToolCallStatus.SUCCEEDED for row in lookups)
    # the flaky tool's failures are classified, and the circuit opened and failed fast
    quote_classes = Counter(o.error_class for o in observations if o.name == "quote")
    assert set(quote_classes) <= {
        None,
        ErrorClass.TOOL_ERROR,
        ErrorClass.TOOL_TIMEOUT,
        ErrorClass.CIRCUIT_OPEN,
    }
    assert quote_classes[ErrorClass.CIRCUIT_OPEN] > 0
    assert quote_classes[ErrorClass.TOOL_ERROR] + quote_classes[ErrorClass.TOOL_TIMEOUT] > 0
    assert breaker is not None
    assert breaker.state is CircuitState.OPEN
    assert breaker.opened_count >= 1
    # fail-fast calls never reached the tool: they have no ledger row
    assert len([row for row in ledger if row.tool == "quote"]) < RUNS
