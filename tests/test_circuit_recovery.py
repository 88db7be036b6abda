"""Circuit breakers through the run loop, in one worker process (as the console's embedded
worker runs): a half-open trial that ends in any way, or never reports back, leaves the tool
usable again; one bad input does not take the tool away; the demo's fraud check keeps its
breaker closed for one bad order and opens it for an outage."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.demo.data import seed_records
from agent.demo.support import check_fraud_score
from agent.errors import ToolError, ToolTimeout
from agent.tools.base import ToolContext, ToolSpec
from agent.tools.python import PythonTool
from agent.tools.registry import ToolRegistry
from storage.engine import read_session, write_connection, write_session
from storage.enums import CircuitState, RunStatus, SideEffect, StepKind
from storage.models import CircuitBreaker, Run, Step
from storage.models.demo import SupportFraudSignal
from storage.tables import RUNS
from tests.support.runtime import drive, install_agent, scripted_version, submit

RESET_S = 0.4
ANY = {"type": "object"}


class FakeService:
    """The service behind the tool ``svc``: each call takes the next planned behaviour (then
    answers normally), and the read tool ``steal`` can hand the run to another worker."""

    def __init__(self) -> None:
        self.plan: list[str] = []
        self.calls = 0
        self.steal_next = False

    def svc(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        self.calls += 1
        behaviour = self.plan.pop(0) if self.plan else "ok"
        if behaviour == "down":
            raise ToolError("the service answered HTTP 503 Service Unavailable", retryable=True)
        if behaviour == "refuse":
            raise ToolError(f"the service answered HTTP 404: no order {args.get('n')} exists")
        if behaviour == "crash":
            raise KeyError("order_id")
        if behaviour == "list":
            return ["not", "an", "object"]
        return {"ok": True}

    def steal(self, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Stand-in for a worker that stalled past its lease while another took the run."""
        if self.steal_next:
            self.steal_next = False
            with write_connection(ctx.engine) as connection:
                connection.execute(
                    sa.update(RUNS).where(RUNS.c.id == ctx.run_id).values(lease_owner="other")
                )
        return {}

    def registry(self) -> ToolRegistry:
        registry = ToolRegistry()
        # A write, so its ledger row is committed before it runs: the commit a lost lease fails.
        spec = ToolSpec("svc", "A service.", ANY, ANY, SideEffect.WRITE, True, ("orders",))
        registry.register_tool(PythonTool(spec, self.svc))
        registry.register_tool(PythonTool(ToolSpec("steal", "", ANY), self.steal))
        return registry


def _version(calls: list[dict[str, Any]], **breaker: Any) -> dict[str, Any]:
    return scripted_version(
        [
            {"reasoning": "call", "calls": calls},
            {"reasoning": "done", "final": {"resolution": "answered"}},
        ],
        tools=sorted({call["tool"] for call in calls}),
        budgets={"max_steps": 200, "max_denials": 100, "max_consecutive_failures": 100},
        retries={"max_attempts": 1},
        circuit_breaker={"failure_threshold": 1, "reset_after_s": RESET_S, **breaker},
    )


def _run_once(engine: Engine, registry: ToolRegistry, agent: str) -> list[RunStatus]:
    submit(engine, agent, {"n": 1})
    return drive(engine, registry)


def _outcomes(engine: Engine, tool: str) -> list[str]:
    """Per observed call of ``tool``, in order: "ok", or its error class."""
    with read_session(engine) as session:
        steps = session.exec(
            select(Step)
            .where(col(Step.kind) == StepKind.OBSERVATION)
            .where(col(Step.name) == tool)
            .order_by(col(Step.id))
        ).all()
    return [step.error_class.value if step.error_class else "ok" for step in steps]


def _breaker(engine: Engine, tool: str) -> CircuitBreaker:
    with read_session(engine) as session:
        row = session.get(CircuitBreaker, tool)
    assert row is not None
    return row


@pytest.mark.parametrize("ending", ["refuse", "crash", "list", "down"])
def test_a_half_open_trial_ending_in_any_way_leaves_the_tool_usable(
    engine: Engine, ending: str
) -> None:
    service = FakeService()
    registry = service.registry()
    install_agent(engine, "svc", _version([{"tool": "svc", "args": {"n": 1}}] * 2))
    service.plan = ["down"]
    _run_once(engine, registry, "svc")
    assert _outcomes(engine, "svc") == ["tool_error", "circuit_open"]
    time.sleep(RESET_S + 0.1)

    service.plan = [ending]  # the trial ends so; the call after it would be answered
    _run_once(engine, registry, "svc")
    trial, after = _outcomes(engine, "svc")[2:]
    assert trial == "tool_error"
    if ending == "down":  # the service is still down: open again, and the next call waits
        assert after == "circuit_open"
        assert _breaker(engine, "svc").state is CircuitState.OPEN
    else:  # a refusal, a bug, a malformed answer: no reason to keep the tool from anyone
        assert after == "ok"
        assert _breaker(engine, "svc").state is CircuitState.CLOSED
    assert service.calls == (2 if ending == "down" else 3)


def test_a_trial_lost_with_its_runs_lease_expires(engine: Engine) -> None:
    service = FakeService()
    registry = service.registry()
    calls = [{"tool": "steal", "args": {}}, {"tool": "svc", "args": {"n": 1}}]
    install_agent(engine, "svc", _version(calls))
    service.plan = ["down"]
    _run_once(engine, registry, "svc")
    assert _outcomes(engine, "svc") == ["tool_error"]
    time.sleep(RESET_S + 0.1)

    # The run that takes the trial loses its lease before the call is made: it never reports.
    service.steal_next = True
    assert _run_once(engine, registry, "svc") == [RunStatus.RUNNING]
    assert _breaker(engine, "svc").state is CircuitState.HALF_OPEN
    _run_once(engine, registry, "svc")
    assert _outcomes(engine, "svc")[-1] == "circuit_open"  # the trial is presumed running

    time.sleep(RESET_S + 0.1)  # now presumed lost: the same worker process may try again
    _run_once(engine, registry, "svc")
    assert _outcomes(engine, "svc")[-1] == "ok"
    assert _breaker(engine, "svc").state is CircuitState.CLOSED
    assert service.calls == 2


def test_one_bad_input_does_not_open_the_circuit_while_distinct_failing_inputs_do(
    engine: Engine,
) -> None:
    bad, outage = {"O-5040"}, {"D-1", "D-2", "D-3"}

    def score(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        if args["order_id"] in bad | outage:
            raise ToolTimeout(f"no score for {args['order_id']} within 0.1s")
        return {"score": 10}

    registry = ToolRegistry()
    registry.register_tool(PythonTool(ToolSpec("score", "", ANY, data_sources=("orders",)), score))
    orders = [o for i in range(1, 9) for o in ("O-5040", f"O-{i}")] + sorted(outage) + ["O-9"]
    document = _version(
        [{"tool": "score", "args": {"order_id": order}} for order in orders],
        failure_threshold=3,
        reset_after_s=600,
    )
    # Retried like the demo's calls: three timeouts of one call are still one failure.
    document["retries"] = {"max_attempts": 3, "initial_backoff_s": 0.001, "max_backoff_s": 0.002}
    install_agent(engine, "scorer", document)
    _run_once(engine, registry, "scorer")
    outcomes = _outcomes(engine, "score")
    assert outcomes[:16] == ["tool_timeout", "ok"] * 8  # the bad order never tripped it
    assert outcomes[16:] == ["tool_timeout"] * 3 + ["circuit_open"]  # an outage does
    assert _breaker(engine, "score").opened_count == 1


def _fraud_checks(turns: list[list[str]]) -> dict[str, Any]:
    """A version that checks the fraud score of each turn's orders, with the demo versions'
    retries and breaker, and a call timeout short enough for tests."""
    return scripted_version(
        [
            *(
                {"calls": [{"tool": "check_fraud_score", "args": {"order_id": o}} for o in turn]}
                for turn in turns
            ),
            {"final": {"resolution": "checked"}},
        ],
        tools=["check_fraud_score"],
        data_sources=["fraud"],
        policy={"default": "allow", "rules": []},
        budgets={"call_timeout_s": 0.05, "max_consecutive_failures": 10},
        retries={"max_attempts": 3, "initial_backoff_s": 0.001, "max_backoff_s": 0.002},
        circuit_breaker={"failure_threshold": 5, "reset_after_s": 30},
    )


def test_the_demo_fraud_check_opens_for_an_outage_and_not_for_bad_orders(engine: Engine) -> None:
    with write_session(engine) as session:
        seed_records(session)
    registry = ToolRegistry()
    registry.register_tool(check_fraud_score)
    # On every run O-5040 times out (the service hangs on it) and O-5041 cannot be scored.
    install_agent(engine, "fraud", _fraud_checks([["O-5040"], ["O-5041"], ["O-5001", "O-5002"]]))
    for _ in range(8):
        _run_once(engine, registry, "fraud")
    outcomes = _outcomes(engine, "check_fraud_score")
    assert outcomes[:4] == ["tool_timeout", "tool_error", "ok", "ok"]
    assert "circuit_open" not in outcomes
    assert _breaker(engine, "check_fraud_score").opened_count == 0

    # Then the fraud service goes down: it hangs on every order.
    outage = ["O-5011", "O-5012", "O-5013", "O-5014", "O-5015", "O-5016"]
    with write_session(engine) as session:
        for order in outage:
            signal = session.get(SupportFraudSignal, order)
            assert signal is not None
            signal.fault = "timeout"
            session.add(signal)
    install_agent(engine, "outage", _fraud_checks([outage]))
    _run_once(engine, registry, "outage")
    outcomes = _outcomes(engine, "check_fraud_score")
    assert outcomes[-6:] == ["tool_timeout"] * 5 + ["circuit_open"]
    assert _breaker(engine, "check_fraud_score").state is CircuitState.OPEN
    with read_session(engine) as session:
        assert all(run.status is not RunStatus.RUNNING for run in session.exec(select(Run)))
