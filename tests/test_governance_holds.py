"""The gate holds: approvals are re-decided when they execute, counted limits are atomic, budgets
bind every call, call ids cannot collide, and a run that fails on every claim ends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.errors import InvalidInput
from agent.tools.registry import ToolRegistry
from storage.engine import read_session
from storage.enums import (
    ErrorClass,
    ReviewKind,
    ReviewStatus,
    RunStatus,
    StepKind,
    StepStatus,
    TaskStatus,
)
from storage.models import AuditEvent, LimitReservation, Review, Run, Step, Task, ToolCall
from tests.support.runtime import (
    MANAGER,
    OPERATOR,
    Effects,
    drive,
    install_agent,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)

# One paid refund per customer per day: the limit counts refunds from Steward's own ledger, and
# a manager may override it.
DAILY_LIMIT: dict[str, Any] = {
    "default": "allow",
    "counters": [
        {"id": "paid_today", "tool": "pay", "per": "task.customer", "window": "day"},
        {"id": "run_paid", "tool": "pay", "window": "run", "sum": "args.amount"},
    ],
    "rules": [
        {
            "id": "pay-medium",
            "tool": "pay",
            "when": "args.amount > 100.0",
            "effect": "escalate",
            "reason": "refunds over $100 need an operator",
            "sla_minutes": 30,
        },
        {
            "id": "one-per-day",
            "tool": "pay",
            "when": "counters.paid_today >= 1",
            "effect": "deny",
            "reason": "one refund per customer per day",
            "override_roles": ["manager"],
        },
    ],
}


def _pay(amount: float, order: str = "O1") -> dict[str, Any]:
    return {"tool": "pay", "args": {"order_id": order, "amount": amount}}


def _steps(engine: Engine, kind: StepKind, run_id: int | None = None) -> list[Step]:
    with read_session(engine) as session:
        steps = session.exec(select(Step).where(col(Step.kind) == kind).order_by(col(Step.id)))
        return [s for s in steps.all() if run_id is None or s.run_id == run_id]


def _reviews(engine: Engine) -> list[Review]:
    with read_session(engine) as session:
        return list(session.exec(select(Review).order_by(col(Review.id))).all())


def test_an_approval_whose_call_became_deniable_is_not_executed_until_overridden(
    engine: Engine,
) -> None:
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(
        engine,
        "shop",
        scripted_version(
            [{"reasoning": "refund", "calls": [_pay(150)]}, {"final": {"resolution": "done"}}],
            policy=DAILY_LIMIT,
        ),
    )
    submit(engine, "shop", {"customer": "C1"})
    assert drive(engine, registry) == [RunStatus.WAITING_REVIEW]
    escalation = _reviews(engine)[0]
    assert (escalation.kind, escalation.rule_id) == (ReviewKind.ESCALATION, "pay-medium")

    # While it waits, another run pays the customer's one refund of the day.
    install_small = scripted_version(
        [{"reasoning": "small", "calls": [_pay(40, "O2")]}, {"final": {"resolution": "done"}}],
        policy=DAILY_LIMIT,
    )
    _add_version(engine, "shop", install_small)
    submit(engine, "shop", {"customer": "C1"})
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert sorted(effects.payments.values()) == [40.0]

    approved = reviews.approve(platform_for(engine, registry), OPERATOR, escalation.id or 0)
    assert approved.note is not None and "one-per-day" in approved.note  # told at once
    assert drive(engine, registry) == [RunStatus.WAITING_REVIEW]
    assert sorted(effects.payments.values()) == [40.0]  # the plain approval paid nothing
    block = _reviews(engine)[-1]
    assert (block.kind, block.status, block.rule_id, block.parent_id) == (
        ReviewKind.BLOCK,
        ReviewStatus.BLOCKED,
        "one-per-day",
        escalation.id,
    )
    first_run = escalation.run_id
    reauthorized = _steps(engine, StepKind.APPLY_GUARDRAIL, first_run)
    assert [s.status for s in reauthorized] == [StepStatus.ESCALATED, StepStatus.DENIED]

    reviews.override(platform_for(engine, registry), MANAGER, block.id or 0, "goodwill, FIN-9")
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert sorted(effects.payments.values()) == [40.0, 150.0]
    guardrails = _steps(engine, StepKind.APPLY_GUARDRAIL, first_run)
    assert guardrails[-1].status is StepStatus.OK
    authorization = (guardrails[-1].output or {})["authorization"]
    assert (authorization["approved"], authorization["overridden"]) == (
        ["pay-medium"],
        ["one-per-day"],
    )
    humans = _steps(engine, StepKind.HUMAN_APPROVAL, first_run)
    assert [(s.output or {})["decision"] for s in humans] == ["approved", "overridden"]
    with read_session(engine) as session:
        audited = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert {"review.approve", "review.override"} <= set(audited)


def test_an_edit_the_policy_denies_is_refused_like_a_stale_approval_would_be_blocked(
    engine: Engine,
) -> None:
    registry = shop_registry(Effects())
    install_agent(
        engine,
        "shop",
        scripted_version(
            [{"reasoning": "refund", "calls": [_pay(150)]}, {"final": {"resolution": "done"}}]
        ),
    )
    submit(engine, "shop", {"order_id": "O1"})
    drive(engine, registry)
    review = _reviews(engine)[0]
    with pytest.raises(InvalidInput, match=r"denied by rule pay-large.*override by manager"):
        reviews.edit_and_approve(
            platform_for(engine, registry),
            OPERATOR,
            review.id or 0,
            {"order_id": "O1", "amount": 5000},
        )
    result = reviews.edit_and_approve(
        platform_for(engine, registry), OPERATOR, review.id or 0, {"order_id": "O1", "amount": 120}
    )
    assert (result.status, result.note) == (ReviewStatus.EDITED, None)


def test_concurrent_runs_cannot_overshoot_a_counted_limit_in_one_process(engine: Engine) -> None:
    """Many runs of one customer, each allowed on its own: the counter lets exactly one pay."""
    effects = Effects()
    registry = shop_registry(effects)
    install_agent(
        engine,
        "shop",
        scripted_version(
            [{"reasoning": "refund", "calls": [_pay(20)]}, {"final": {"resolution": "done"}}],
            policy=DAILY_LIMIT,
        ),
    )
    for _ in range(6):
        submit(engine, "shop", {"customer": "C7"})
    statuses = drive(engine, registry)
    assert statuses.count(RunStatus.SUCCEEDED) == 1
    assert statuses.count(RunStatus.WAITING_REVIEW) == 5  # blocks a manager may override
    assert len(effects.payments) == 1
    with read_session(engine) as session:
        reserved = session.exec(select(LimitReservation)).all()
    assert {(r.counter, r.released_at) for r in reserved} == {
        ("paid_today", None),
        ("run_paid", None),
    }


def test_a_run_total_holds_across_the_parallel_calls_of_one_turn(engine: Engine) -> None:
    effects = Effects()
    registry = shop_registry(effects)
    policy = {
        "default": "allow",
        "counters": [{"id": "run_paid", "tool": "pay", "window": "run", "sum": "args.amount"}],
        "rules": [
            {
                "id": "run-total",
                "tool": "pay",
                "when": "counters.run_paid + args.amount > 100.0",
                "effect": "deny",
                "reason": "a run refunds at most $100",
            },
            {
                "id": "needs-eyes",
                "tool": "pay",
                "when": "args.amount >= 30.0",
                "effect": "escalate",
                "reason": "refunds of $30 or more need an operator",
            },
        ],
    }
    parallel = {"reasoning": "four at once", "calls": [_pay(30.0, f"O{i}") for i in range(4)]}
    install_agent(
        engine,
        "shop",
        scripted_version(
            [parallel, {"final": {"resolution": "done"}}], policy=policy, budgets={"max_denials": 5}
        ),
    )
    submit(engine, "shop", {"order_id": "O1"})
    assert drive(engine, registry) == [RunStatus.WAITING_REVIEW]
    pending = _reviews(engine)
    assert len(pending) == 4  # each was under the total when it was proposed
    for review in pending:
        reviews.approve(platform_for(engine, registry), OPERATOR, review.id or 0)
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert sum(effects.payments.values()) == 90.0  # three of them; the fourth would pass $100
    denied = [s for s in _steps(engine, StepKind.OBSERVATION) if s.error_class]
    assert [(s.call_id, s.error_class) for s in denied] == [("t0c3", ErrorClass.POLICY_DENIED)]


def test_the_step_budget_binds_every_call_of_a_turn(engine: Engine) -> None:
    effects = Effects()
    registry = shop_registry(effects)
    six = {
        "reasoning": "spam",
        "calls": [{"tool": "notify", "args": {"to": f"{i}"}} for i in range(6)],
    }
    install_agent(
        engine,
        "shop",
        scripted_version(
            [six, {"final": {"resolution": "done"}}],
            budgets={"max_steps": 8, "max_denials": 10},
            rate_limits=[],
        ),
    )
    task = submit(engine, "shop", {"order_id": "O1"})
    assert drive(engine, registry) == [RunStatus.ESCALATED]
    # root + proposal, then a guardrail, an attempt and an observation per call: two calls fit.
    assert sum(effects.by_key.values()) == 2
    with read_session(engine) as session:
        run = session.exec(select(Run)).one()
        assert session.get(Task, task).status is TaskStatus.ESCALATED  # type: ignore[union-attr]
    assert run.error_class is ErrorClass.BUDGET_EXHAUSTED
    assert "8 steps" in (run.error_message or "")


def test_the_deadline_bounds_a_slow_call_and_stops_the_turn(engine: Engine) -> None:
    effects = Effects()
    registry = shop_registry(effects)
    slow = {
        "reasoning": "slow ones",
        "calls": [{"tool": "slow_notify", "args": {"seconds": 3}} for _ in range(3)],
    }
    install_agent(
        engine,
        "shop",
        scripted_version(
            [slow, {"final": {"resolution": "done"}}],
            budgets={"run_deadline_s": 0.5, "call_timeout_s": 2, "max_denials": 10},
        ),
    )
    submit(engine, "shop", {"order_id": "O1"})
    drive(engine, registry)
    with read_session(engine) as session:
        run = session.exec(select(Run)).one()
        attempts = session.exec(select(ToolCall)).all()
    assert len(attempts) == 1  # the second call was never started
    assert attempts[0].duration_ms is not None and attempts[0].duration_ms < 1500
    assert run.agent_time_ms < 1500


def test_call_ids_reused_across_turns_are_made_unique(engine: Engine) -> None:
    effects = Effects()
    registry = shop_registry(effects)
    same = {"tool": "lookup", "args": {"order_id": "O1"}, "id": "call_1"}
    install_agent(
        engine,
        "shop",
        scripted_version(
            [
                {"reasoning": "one", "calls": [same]},
                {"reasoning": "two", "calls": [same, {**same, "args": {"order_id": "O2"}}]},
                {"reasoning": "bad id", "calls": [{**same, "id": "x\x00" * 40}]},
                {"final": {"resolution": "done"}},
            ]
        ),
    )
    submit(engine, "shop", {"order_id": "O1"})
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    with read_session(engine) as session:
        ids = [row.call_id for row in session.exec(select(ToolCall)).all()]
    assert len(ids) == len(set(ids)) == 4
    assert "call_1" in ids


def test_a_nul_in_a_tool_name_is_refused_and_stored(engine: Engine) -> None:
    registry = shop_registry(Effects())
    install_agent(
        engine,
        "shop",
        scripted_version(
            [
                {"reasoning": "odd", "calls": [{"tool": "look\x00up\ud800", "args": {}}]},
                {"final": {"resolution": "done", "note": "bad\x00text"}},
            ]
        ),
    )
    submit(engine, "shop", {"order_id": "O1"})
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    denied = _steps(engine, StepKind.OBSERVATION)[0]
    assert denied.error_class is ErrorClass.OUT_OF_SCOPE
    assert "\x00" not in denied.name


class BrokenRegistry(ToolRegistry):
    """A registry whose tools cannot be resolved: every claim of its runs raises."""

    def resolve(self, spec: Any, client: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the plugin crashed while loading")


def test_a_run_that_fails_on_every_claim_ends_failed_with_a_message(engine: Engine) -> None:
    install_agent(engine, "shop", scripted_version([{"final": {"resolution": "done"}}]))
    registry = BrokenRegistry()
    for tool in shop_registry(Effects()).tool_names:
        registry.register_tool(shop_registry(Effects()).tool(tool))
    task = submit(engine, "shop", {"order_id": "O1"})
    statuses = drive(engine, registry)
    assert statuses == [RunStatus.READY, RunStatus.READY, RunStatus.FAILED]
    with read_session(engine) as session:
        run = session.exec(select(Run)).one()
        assert session.get(Task, task).status is TaskStatus.FAILED  # type: ignore[union-attr]
    assert (run.error_class, run.failed_claims) == (ErrorClass.INTERNAL_ERROR, 3)
    assert "RuntimeError: the plugin crashed while loading" in (run.error_message or "")
    assert drive(engine, registry) == []  # nothing left to claim


def test_a_version_with_an_invalid_output_schema_fails_its_run_at_once(engine: Engine) -> None:
    install_agent(
        engine,
        "shop",
        scripted_version(
            [{"final": {"resolution": "done"}}], output={"schema": {"type": "no-such-type"}}
        ),
    )
    submit(engine, "shop", {"order_id": "O1"})
    assert drive(engine, shop_registry(Effects())) == [RunStatus.FAILED]
    with read_session(engine) as session:
        run = session.exec(select(Run)).one()
    assert run.error_class is ErrorClass.INTERNAL_ERROR
    assert "output schema is not a valid JSON Schema" in (run.error_message or "")


def _add_version(engine: Engine, agent: str, document: dict[str, Any]) -> None:
    """Point ``agent`` at a new version (the runtime pins each run to the version it began on)."""
    import yaml

    from storage.engine import write_session
    from storage.models import Agent, AgentVersion

    with write_session(engine) as session:
        row = session.exec(select(Agent).where(col(Agent.name) == agent)).one()
        number = len(
            session.exec(select(AgentVersion).where(col(AgentVersion.agent_id) == row.id)).all()
        )
        version = AgentVersion(
            agent_id=row.id or 0,
            number=number + 1,
            content_hash=f"{agent}-{number + 1}",
            policy_hash="p",
            spec=document,
            source_yaml=yaml.safe_dump(document),
            created_by="erin",
        )
        session.add(version)
        session.flush()
        row.active_version_id = version.id
        session.add(row)


@pytest.mark.parametrize(
    ("field", "value"), [("lease_s", 0.0), ("poll_s", -1.0), ("lease_s", float("nan"))]
)
def test_a_worker_refuses_a_lease_or_poll_that_would_spin(
    engine: Engine, field: str, value: float
) -> None:
    from agent.worker import Worker

    with pytest.raises(ValueError, match=f"{field} must be a positive number"):
        Worker(platform_for(engine), **{field: value})
