"""Python tools, the fault-injecting wrapper, schema validation and the tool registry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from agent.calls import Effect
from agent.errors import InvalidInput, NotFound, ToolError, ToolTimeout, VersionSpecError
from agent.plugins import installed_registry
from agent.spec import PlannerSpec, PolicySpec, VersionSpec
from agent.tools.base import Tool, ToolContext, ToolSpec
from agent.tools.faults import MAX_HANG_S, Fault, FaultyTool
from agent.tools.python import PythonTool, tool
from agent.tools.registry import FactRequest, ToolRegistry
from agent.tools.validation import compiled_validator, validate, validate_args, validate_result
from storage.engine import create_engine
from storage.enums import ErrorClass, SideEffect

ORDER_ARGS = {
    "type": "object",
    "required": ["order_id", "items"],
    "additionalProperties": False,
    "properties": {
        "order_id": {"type": "string", "pattern": "^O-[0-9]+$"},
        "email": {"type": "string", "format": "email"},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}},
        },
    },
}


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'tools.db'}")
    yield engine
    engine.dispose()


def _ctx(engine: Engine, key: str = "run1:t0c0", attempt: int = 1) -> ToolContext:
    return ToolContext(run_id=1, idempotency_key=key, timeout_s=1.0, engine=engine, attempt=attempt)


class Counting:
    """A tool that counts its invocations (thread-safe), for checking what a wrapper lets by."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        self.spec = ToolSpec(
            "count",
            "Count calls.",
            {"type": "object"},
            side_effect=SideEffect.WRITE,
            idempotent=False,
        )

    def call(self, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            return {"calls": self.calls}


# --- Python tools -----------------------------------------------------------------------------


def test_tool_decorator_builds_the_spec_and_calls_the_function(sqlite_engine: Engine) -> None:
    @tool(
        "place_order",
        args_schema=ORDER_ARGS,
        side_effect=SideEffect.WRITE,
        idempotent=False,
        data_sources=("orders",),
        compensating_tool="cancel_order",
    )
    def place_order(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Place an order for the listed items.

        Longer notes for developers that the planner does not need.
        """
        return {"order_id": args["order_id"], "key": ctx.idempotency_key}

    assert isinstance(place_order, PythonTool)
    assert isinstance(place_order, Tool)
    spec = place_order.spec
    assert spec.description == "Place an order for the listed items."
    assert (spec.side_effect, spec.idempotent, spec.data_sources, spec.compensating_tool) == (
        SideEffect.WRITE,
        False,
        ("orders",),
        "cancel_order",
    )
    assert spec.function_definition()["function"]["parameters"] == ORDER_ARGS
    assert place_order.call({"order_id": "O-1"}, _ctx(sqlite_engine)) == {
        "order_id": "O-1",
        "key": "run1:t0c0",
    }


def test_a_python_tool_that_returns_no_object_is_a_tool_error(sqlite_engine: Engine) -> None:
    def broken(args: Mapping[str, Any], ctx: ToolContext) -> Any:
        return ["not", "an", "object"]

    spec = ToolSpec("broken", "Broken.", {"type": "object"})
    with pytest.raises(ToolError, match="returned list") as caught:
        PythonTool(spec, broken).call({}, _ctx(sqlite_engine))
    assert not caught.value.retryable


def test_tool_errors_pass_through_unchanged(sqlite_engine: Engine) -> None:
    @tool("down", args_schema={"type": "object"}, description="Always down.")
    def down(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise ToolError("service down", retryable=True)

    with pytest.raises(ToolError, match="service down") as caught:
        down.call({}, _ctx(sqlite_engine))
    assert caught.value.retryable and down.spec.description == "Always down."


# --- validation -------------------------------------------------------------------------------


def test_validation_lists_every_problem_with_its_path() -> None:
    spec = ToolSpec("place_order", "", ORDER_ARGS)
    args = {"order_id": "X", "email": "nobody", "items": [{"qty": 1}, {"qty": 0}], "extra": 1}
    assert validate_args(spec, args) == [
        "args.email: 'nobody' is not a 'email'",
        "args.items[1].qty: 0 is less than the minimum of 1",
        "args.order_id: 'X' does not match '^O-[0-9]+$'",
        "args: Additional properties are not allowed ('extra' was unexpected)",
    ]
    assert validate_args(spec, {"order_id": "O-1", "items": []}) == []
    assert validate_args(spec, "nope") == ["args: 'nope' is not of type 'object'"]


def test_result_validation_uses_the_result_schema() -> None:
    spec = ToolSpec(
        "t", "", {"type": "object"}, result_schema={"type": "object", "required": ["id"]}
    )
    assert validate_result(spec, {"id": 1}) == []
    assert validate_result(spec, {}) == ["result: 'id' is a required property"]


def test_validators_are_compiled_once_per_schema() -> None:
    reordered = dict(reversed(list(ORDER_ARGS.items())))
    assert compiled_validator(ORDER_ARGS) is compiled_validator(reordered)
    assert compiled_validator(ORDER_ARGS) is not compiled_validator({"type": "string"})


def test_an_invalid_schema_is_a_clear_error() -> None:
    spec = ToolSpec("odd", "", {"type": "objekt"})
    with pytest.raises(InvalidInput, match="tool 'odd' arguments: the JSON schema is invalid"):
        validate_args(spec, {})
    assert validate({"maxLength": 3}, "abcd", root="x") == ["x: 'abcd' is too long"]


# --- fault injection --------------------------------------------------------------------------


def test_faults_are_deterministic_per_key_and_attempt(sqlite_engine: Engine) -> None:
    one = FaultyTool(Counting(), fail_rate=0.3, hang_rate=0.2, hang_s=0.01, seed=4)
    two = FaultyTool(Counting(), fail_rate=0.3, hang_rate=0.2, hang_s=0.01, seed=4)
    other = FaultyTool(Counting(), fail_rate=0.3, hang_rate=0.2, hang_s=0.01, seed=5)
    keys = [_ctx(sqlite_engine, f"run{i}:t0c0", attempt) for i in range(200) for attempt in (1, 2)]
    plan = [one.planned_fault(c) for c in keys]
    assert plan == [two.planned_fault(c) for c in keys]
    assert plan != [other.planned_fault(c) for c in keys]


def test_fault_rates_are_roughly_as_configured(sqlite_engine: Engine) -> None:
    faulty = FaultyTool(Counting(), fail_rate=0.3, hang_rate=0.2, hang_s=0.01)
    plan = [faulty.planned_fault(_ctx(sqlite_engine, f"k{i}")) for i in range(4000)]
    assert 0.27 < plan.count(Fault.FAIL) / 4000 < 0.33
    assert 0.17 < plan.count(Fault.HANG) / 4000 < 0.23


def test_injected_failures_are_retryable_and_never_reach_the_inner_tool(
    sqlite_engine: Engine,
) -> None:
    inner = Counting()
    faulty = FaultyTool(inner, fail_rate=0.5, seed=1)
    ctx = next(
        c
        for c in (_ctx(sqlite_engine, f"k{i}") for i in range(100))
        if faulty.planned_fault(c) is Fault.FAIL
    )
    with pytest.raises(ToolError, match="injected failure") as caught:
        faulty.call({}, ctx)
    assert caught.value.retryable and caught.value.error_class is ErrorClass.TOOL_ERROR
    assert inner.calls == 0
    retry = next(
        _ctx(sqlite_engine, ctx.idempotency_key, a)
        for a in range(2, 50)
        if faulty.planned_fault(_ctx(sqlite_engine, ctx.idempotency_key, a)) is None
    )
    assert faulty.call({}, retry) == {"calls": 1}
    assert faulty.spec is inner.spec


def test_a_hang_sleeps_then_times_out_and_an_executor_can_cut_it(sqlite_engine: Engine) -> None:
    inner = Counting()
    short = FaultyTool(inner, hang_rate=1.0, hang_s=0.05)
    started = time.perf_counter()
    with pytest.raises(ToolTimeout, match="injected hang"):
        short.call({}, _ctx(sqlite_engine))
    assert 0.05 <= time.perf_counter() - started < 0.5
    long = FaultyTool(inner, hang_rate=1.0, hang_s=0.6)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(long.call, {}, _ctx(sqlite_engine))
        started = time.perf_counter()
        with pytest.raises(FutureTimeout):
            future.result(timeout=0.05)
        assert time.perf_counter() - started < 0.3
        with pytest.raises(ToolTimeout):
            future.result()
    assert inner.calls == 0


@pytest.mark.parametrize(
    "options",
    [
        {"fail_rate": -0.1},
        {"hang_rate": 1.5},
        {"fail_rate": 0.6, "hang_rate": 0.6},
        {"hang_s": 0},
        {"hang_s": MAX_HANG_S + 1},
    ],
)
def test_fault_settings_are_bounded(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        FaultyTool(Counting(), **options)


# --- registry ---------------------------------------------------------------------------------


def _version(tools: tuple[str, ...], facts: tuple[str, ...] = ()) -> VersionSpec:
    return VersionSpec(
        planner=PlannerSpec(kind="scripted"),
        tools=tools,
        policy=PolicySpec(default=Effect.ALLOW, facts=facts),
    )


def test_registry_names_what_it_knows_and_refuses_duplicates() -> None:
    registry = ToolRegistry()
    counting = Counting()
    registry.register_tool(counting)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_tool(Counting())
    assert registry.tool("count") is counting
    with pytest.raises(NotFound, match="known tools: count"):
        registry.tool("missing")
    registry.register_fact("answer", lambda ctx: 42, inputs=[])
    with pytest.raises(ValueError, match="already registered"):
        registry.register_fact("answer", lambda ctx: 43, inputs=[])
    with pytest.raises(ValueError, match=r"not task\.<field> or args\.<field>"):
        registry.register_fact("question", lambda ctx: 0, inputs=["customer_id"])
    assert (registry.tool_names, registry.fact_names) == (("count",), ("answer",))


def test_resolve_and_facts_follow_the_version(sqlite_engine: Engine) -> None:
    registry = ToolRegistry()
    registry.register_tool(Counting())
    registry.register_fact("args_seen", lambda ctx: sorted(ctx.inputs), inputs=["args.a"])
    registry.register_fact(
        "from_task", lambda ctx: ctx.value("task.customer_id"), inputs=["task.customer_id"]
    )
    registry.register_fact("unused", lambda ctx: 1 / 0, inputs=[])
    with httpx.Client() as client:
        assert list(registry.resolve(_version(("count",)), client)) == ["count"]
        with pytest.raises(VersionSpecError, match=r"'ghost'.*registered tools: count"):
            registry.resolve(_version(("count", "ghost")), client)
    # A provider sees only the inputs it declared: not the other arguments, not the task's
    # other fields, and never the call's customer id in place of the task's.
    ctx = FactRequest(
        sqlite_engine, "count", {"b": 1, "a": 2, "customer_id": "C-9"}, {"customer_id": "C-1"}, 5
    )
    facts = registry.facts_for(_version(("count",), ("args_seen", "from_task")), ctx)
    assert facts == {"args_seen": ["args.a"], "from_task": "C-1"}
    with pytest.raises(VersionSpecError, match="'nobody'"):
        registry.facts_for(_version(("count",), ("nobody",)), ctx)
    assert "unused" not in registry.facts_for(_version(("count",), ("unused",)), ctx)


def test_default_registry_holds_both_demo_domains() -> None:
    registry = installed_registry()
    assert set(registry.tool_names) == {
        "lookup_customer",
        "lookup_order",
        "issue_refund",
        "send_email",
        "close_ticket",
        "delete_customer_data",
        "check_fraud_score",
        "lookup_employee",
        "grant_access",
        "revoke_access",
        "reset_password",
    }
    assert set(registry.fact_names) == {
        "refunds_today",
        "customer_email",
        "order_customer",
        "ticket_customer",
        "app_level",
        "employee_status",
        "employee_email",
    }
    assert registry.tool("delete_customer_data").spec.side_effect is SideEffect.IRREVERSIBLE
    assert registry.tool("issue_refund").spec.idempotent
    assert not registry.tool("reset_password").spec.idempotent
