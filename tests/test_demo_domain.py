"""The demo domains: tools over their systems of record, facts, versions, and the sample tasks.

The sample tasks are driven through the playbook planner, the compiled policy of the version,
the registry's facts and the real tools on SQLite and PostgreSQL, by a small loop that mediates
each call the way DESIGN.md orders it (scope, arguments, policy, rate limit, execution with
retries, result validation). Each task's expected outcome and policy decisions must come out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import limits
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import select

from agent.calls import Effect, Observation, ProposedCall
from agent.demo import DEMO_AGENTS, version_yaml
from agent.demo.data import seed_records
from agent.demo.tasks import IT_ACCESS, SAMPLE_TASKS, SUPPORT, tasks_for
from agent.errors import Health, ToolError, ToolTimeout
from agent.mediation.counters import CompiledCounters, read_counters
from agent.mediation.decision import Decision
from agent.mediation.policy import CompiledOutputChecks, CompiledPolicy
from agent.planning.base import RunContext, Turn
from agent.planning.playbook import PlaybookPlanner
from agent.plugins import installed_registry
from agent.spec import VERSION_SCHEMA, VersionSpec
from agent.tools.base import Tool, ToolContext
from agent.tools.registry import FactContext, FactRequest, ToolRegistry
from agent.tools.validation import compiled_validator, validate, validate_args, validate_result
from storage.engine import read_session, write_session
from storage.enums import ErrorClass
from storage.models.demo import (
    ItAccessGrant,
    SupportEmail,
    SupportOrder,
    SupportRefund,
    SupportTicket,
)
from storage.types import utcnow

ALL_VERSIONS = [name for names in DEMO_AGENTS.values() for name in names]


def _document(name: str) -> dict[str, Any]:
    document = yaml.safe_load(version_yaml(name))
    compiled_validator(VERSION_SCHEMA).validate(document)
    return dict(document)


def _spec(name: str) -> VersionSpec:
    return VersionSpec.from_document(_document(name))


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    with write_session(engine) as session:
        assert seed_records(session) > 100
    return engine


def _ctx(
    engine: Engine, key: str = "k1", *, attempt: int = 1, timeout_s: float = 0.05
) -> ToolContext:
    return ToolContext(
        run_id=1, idempotency_key=key, timeout_s=timeout_s, engine=engine, attempt=attempt
    )


# --- versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_VERSIONS)
def test_every_demo_version_is_valid_and_its_scope_resolves(name: str) -> None:
    spec = VersionSpec.from_document(_document(name))
    CompiledPolicy(spec.policy)
    CompiledOutputChecks(spec.output.checks)
    planner = PlaybookPlanner(spec.planner)
    registry = installed_registry()
    registry.check_facts(spec)
    with httpx.Client() as client:
        tools = registry.resolve(spec, client)
    assert set(tools) == set(spec.tools)
    for tool in tools.values():
        assert set(tool.spec.data_sources) <= set(spec.data_sources), tool.spec.name
    for playbook in planner.playbooks:
        assert {step.tool for step in playbook.steps} <= set(spec.tools)
    for limit in spec.rate_limits:
        limits.parse(limit.limit)
    assert spec.budgets.call_timeout_s <= 5


@pytest.mark.parametrize("agent", list(DEMO_AGENTS))
def test_version_two_differs_in_prompt_policy_and_noise(agent: str) -> None:
    v1, v2 = (_spec(name) for name in DEMO_AGENTS[agent])
    assert v1.planner.prompt != v2.planner.prompt
    assert v1.policy != v2.policy
    assert v1.planner.noise == 0 < v2.planner.noise


def test_support_policy_thresholds_and_absolute_deny() -> None:
    policy = CompiledPolicy(_spec("support-v1").policy)
    facts = {
        "refunds_today": 0,
        "customer_email": "a@example.com",
        "order_customer": "C-1",
        "ticket_customer": "C-1",
    }
    task = {"customer_id": "C-1"}
    base = {"task": task, "facts": facts, "counters": {"refunds_today": 0}}

    def refund(amount: float, today: int = 0, paid_elsewhere: int = 0) -> Any:
        variables = {
            **base,
            "args": {"customer_id": "C-1", "order_id": "O-1", "amount": amount},
            "facts": {**facts, "refunds_today": paid_elsewhere},
            "counters": {"refunds_today": today},
        }
        return policy.evaluate("issue_refund", variables)

    assert [refund(a).effect for a in (5, 100, 100.01, 1000, 1000.5)] == [
        Effect.ALLOW,
        Effect.ALLOW,
        Effect.ESCALATE,
        Effect.ESCALATE,
        Effect.DENY,
    ]
    over = refund(2000)
    assert (over.rule_id, over.override_roles) == ("refund-over-limit", ("manager",))
    escalated = refund(500)
    assert (escalated.sla_minutes, escalated.on_expiry, escalated.max_tier) == (60, "escalate", 2)
    assert refund(10, today=3).rule_id == "refund-daily-limit"
    assert refund(10, paid_elsewhere=3).rule_id == "refund-daily-limit"
    assert refund(10, today=2, paid_elsewhere=2).effect is Effect.ALLOW
    deletion = policy.evaluate("delete_customer_data", {**base, "args": {}})
    assert (deletion.effect, deletion.override_roles) == (Effect.DENY, ())
    email = policy.evaluate("send_email", {**base, "args": {"to": "x@evil.example"}})
    assert (email.effect, email.rule_id) == (Effect.DENY, "email-customer-only")
    v2 = CompiledPolicy(_spec("support-v2").policy)
    small = {**base, "args": {"customer_id": "C-1", "order_id": "O-1", "amount": 59}}
    assert v2.evaluate("issue_refund", small).effect is Effect.ESCALATE


def test_it_access_policy_escalates_admin_and_denies_production() -> None:
    v1 = CompiledPolicy(_spec("it-access-v1").policy)
    v2 = CompiledPolicy(_spec("it-access-v2").policy)

    def grant(policy: CompiledPolicy, app: str, level: str, app_level: str, status: str) -> Any:
        variables = {
            "args": {"employee_id": "E-1", "app_id": app, "access_level": level},
            "task": {"employee_id": "E-1"},
            "facts": {"app_level": app_level, "employee_status": status},
        }
        return policy.evaluate("grant_access", variables)

    assert grant(v1, "wiki", "standard", "standard", "active").effect is Effect.ALLOW
    assert grant(v1, "github", "admin", "standard", "active").effect is Effect.ESCALATE
    prod = grant(v1, "production-db", "read", "critical", "active")
    assert (prod.effect, prod.rule_id, prod.override_roles) == (
        Effect.DENY,
        "no-production-db",
        ("manager",),
    )
    assert grant(v2, "production-db", "read", "critical", "active").override_roles == ()
    assert grant(v1, "crm", "standard", "sensitive", "active").effect is Effect.ALLOW
    assert grant(v2, "crm", "standard", "sensitive", "active").effect is Effect.ESCALATE
    assert grant(v2, "wiki", "standard", "standard", "terminated").rule_id == (
        "grant-inactive-employee"
    )


# --- tools and facts ----------------------------------------------------------------------------


def test_seed_records_is_idempotent(seeded: Engine) -> None:
    with write_session(seeded) as session:
        assert seed_records(session) == 0
    with read_session(seeded) as session:
        orders = session.exec(select(SupportOrder)).all()
    assert len(orders) == 45


def test_refund_is_idempotent_by_key_and_facts_count_it(seeded: Engine) -> None:
    registry = installed_registry()
    refund = registry.tool("issue_refund")
    args = {"customer_id": "C-1001", "order_id": "O-5001", "amount": 20.0, "reason": "broken"}
    first = refund.call(args, _ctx(seeded, "run1:t3c0"))
    again = refund.call(args, _ctx(seeded, "run1:t3c0", attempt=2))
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["refund_id"] == first["refund_id"]
    second = refund.call({**args, "amount": 5.0}, _ctx(seeded, "run2:t3c0"))
    assert second["refund_id"] != first["refund_id"]
    with read_session(seeded) as session:
        order = session.get(SupportOrder, "O-5001")
        refunds = session.exec(select(SupportRefund)).all()
    assert order is not None
    assert (order.refunded_cents, order.status, len(refunds)) == (2500, "partially_refunded", 2)

    spec = _spec("support-v1")
    # Facts trust the task: a call naming another customer still reads the task's customer.
    request = FactRequest(
        seeded, "issue_refund", {"customer_id": "C-1002"}, {"customer_id": "C-1001"}, 9
    )
    facts = registry.facts_for(spec, request, only={"refunds_today", "customer_email"})
    assert facts == {"refunds_today": 2, "customer_email": "ada.lovelace@example.com"}
    # A refund from yesterday does not count toward today's limit.
    with write_session(seeded) as session:
        old = session.exec(select(SupportRefund).where(SupportRefund.id == second["refund_id"]))
        row = old.one()
        row.created_at = utcnow() - timedelta(days=1)
        session.add(row)
    facts = registry.facts_for(
        spec, FactRequest(seeded, "issue_refund", {}, {"customer_id": "C-1001"})
    )
    assert facts["refunds_today"] == 1


def test_concurrent_refunds_with_one_key_pay_once(seeded: Engine) -> None:
    refund = installed_registry().tool("issue_refund")
    args = {"customer_id": "C-1002", "order_id": "O-5002", "amount": 10.0}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: refund.call(args, _ctx(seeded, "same-key")), range(4)))
    assert len({r["refund_id"] for r in results}) == 1
    assert sum(not r["duplicate"] for r in results) == 1
    with read_session(seeded) as session:
        order = session.get(SupportOrder, "O-5002")
    assert order is not None and order.refunded_cents == 1000


def test_refund_refuses_more_than_refundable_and_other_customers_orders(seeded: Engine) -> None:
    refund = installed_registry().tool("issue_refund")
    with pytest.raises(ToolError, match="exceeds what is refundable") as too_much:
        refund.call({"customer_id": "C-1001", "order_id": "O-5001", "amount": 45.01}, _ctx(seeded))
    assert too_much.value.retryable is False
    with pytest.raises(ToolError, match="another customer"):
        refund.call({"customer_id": "C-1002", "order_id": "O-5001", "amount": 1.0}, _ctx(seeded))


def test_email_is_not_idempotent_and_ticket_close_is(seeded: Engine) -> None:
    registry = installed_registry()
    email = {
        "customer_id": "C-1001",
        "to": "ada.lovelace@example.com",
        "subject": "Hi",
        "body": "Hello",
    }
    registry.tool("send_email").call(email, _ctx(seeded, "k"))
    registry.tool("send_email").call(email, _ctx(seeded, "k"))
    close = registry.tool("close_ticket")
    first = close.call({"ticket_id": "T-9001", "resolution": "done"}, _ctx(seeded, "c"))
    second = close.call({"ticket_id": "T-9001", "resolution": "again"}, _ctx(seeded, "c"))
    assert (first["already_closed"], second["already_closed"]) == (False, True)
    with read_session(seeded) as session:
        assert len(session.exec(select(SupportEmail)).all()) == 2
        ticket = session.get(SupportTicket, "T-9001")
    assert ticket is not None and (ticket.status, ticket.resolution) == ("closed", "done")
    assert not registry.tool("send_email").spec.idempotent
    assert registry.tool("close_ticket").spec.idempotent


def test_fraud_service_faults_are_deterministic(seeded: Engine) -> None:
    fraud = installed_registry().tool("check_fraud_score")
    assert fraud.call({"order_id": "O-5043"}, _ctx(seeded))["risk"] == "high"
    assert fraud.call({"order_id": "O-5001"}, _ctx(seeded))["risk"] in ("low", "medium")
    with pytest.raises(ToolError) as timeout:
        fraud.call({"order_id": "O-5040"}, _ctx(seeded))
    assert (timeout.value.error_class, timeout.value.retryable) == (ErrorClass.TOOL_TIMEOUT, True)
    assert timeout.value.health is Health.UNHEALTHY
    # An order the service cannot score is refused, every time: an answer about the input.
    for attempt in (1, 2, 3):
        with pytest.raises(ToolError, match="422") as error:
            fraud.call({"order_id": "O-5041"}, _ctx(seeded, attempt=attempt))
        assert (error.value.retryable, error.value.health) == (False, Health.HEALTHY)
    with pytest.raises(ToolError, match="503") as flaky:
        fraud.call({"order_id": "O-5042"}, _ctx(seeded, attempt=1))
    assert (flaky.value.retryable, flaky.value.health) == (True, Health.UNHEALTHY)
    assert fraud.call({"order_id": "O-5042"}, _ctx(seeded, attempt=2))["order_id"] == "O-5042"
    with pytest.raises(ToolError, match="no order 'O-9999'") as missing:
        fraud.call({"order_id": "O-9999"}, _ctx(seeded))
    assert (missing.value.retryable, missing.value.health) == (False, Health.HEALTHY)


def test_delete_customer_data_erases_and_is_irreversible(seeded: Engine) -> None:
    registry = installed_registry()
    tool = registry.tool("delete_customer_data")
    assert tool.spec.side_effect.value == "irreversible"
    tool.call({"customer_id": "C-1030", "reason": "asked"}, _ctx(seeded))
    found = registry.tool("lookup_customer").call({"customer_id": "C-1030"}, _ctx(seeded))
    assert found["erased"] is True and "@invalid.example" in found["email"]


def test_grant_is_idempotent_revoke_compensates_and_facts(seeded: Engine) -> None:
    registry = installed_registry()
    grant = registry.tool("grant_access")
    assert grant.spec.compensating_tool == "revoke_access"
    args = {"employee_id": "E-2004", "app_id": "wiki", "access_level": "standard"}
    first = grant.call(args, _ctx(seeded, "g1"))
    assert grant.call(args, _ctx(seeded, "g1"))["grant_id"] == first["grant_id"]
    assert grant.call(args, _ctx(seeded, "g2"))["duplicate"] is True
    employee = registry.tool("lookup_employee").call({"employee_id": "E-2004"}, _ctx(seeded))
    assert employee["grants"] == [{"app_id": "wiki", "access_level": "standard"}]
    revoked = registry.tool("revoke_access").call(
        {"employee_id": "E-2004", "app_id": "wiki"}, _ctx(seeded)
    )
    assert revoked["revoked"] == 1
    with read_session(seeded) as session:
        rows = session.exec(select(ItAccessGrant).where(ItAccessGrant.employee_id == "E-2004"))
        assert [g.status for g in rows] == ["revoked"]
    with pytest.raises(ToolError, match="terminated"):
        grant.call({**args, "employee_id": "E-2019"}, _ctx(seeded, "g3"))

    spec = _spec("it-access-v1")
    facts = registry.facts_for(
        spec,
        FactRequest(seeded, "grant_access", {"employee_id": "E-2019", "app_id": "production-db"}),
    )
    assert facts["app_level"] == "critical"
    assert facts["employee_status"] == "terminated"
    assert facts["employee_email"].endswith("@corp.example")
    assert registry.facts_for(spec, FactRequest(seeded, "grant_access", {}))["app_level"] is None


def test_demo_tool_schemas_accept_their_own_results(seeded: Engine) -> None:
    registry = installed_registry()
    calls = {
        "lookup_customer": {"customer_id": "C-1003"},
        "lookup_order": {"order_id": "O-5003"},
        "check_fraud_score": {"order_id": "O-5003"},
        "issue_refund": {"customer_id": "C-1003", "order_id": "O-5003", "amount": 1.5},
        "lookup_employee": {"employee_id": "E-2001"},
        "reset_password": {"employee_id": "E-2001"},
    }
    for name, args in calls.items():
        tool = registry.tool(name)
        assert validate_args(tool.spec, args) == [], name
        assert validate_result(tool.spec, tool.call(args, _ctx(seeded, name))) == [], name
    bad = validate_args(registry.tool("issue_refund").spec, {"order_id": "5003", "amount": -1})
    assert bad == [
        "args.amount: -1 is less than or equal to the minimum of 0",
        "args.order_id: '5003' does not match '^O-[0-9]{4}$'",
        "args: 'customer_id' is a required property",
    ]


# --- the sample tasks, end to end through planner, policy, facts and tools ---------------------


def test_there_are_enough_sample_tasks_covering_every_path() -> None:
    assert len(SAMPLE_TASKS) >= 40
    assert len({t.key for t in SAMPLE_TASKS}) == len(SAMPLE_TASKS)
    covered = {c for t in SAMPLE_TASKS for c in t.covers}
    assert covered >= {
        "normal",
        "allow",
        "escalate",
        "deny_overridable",
        "deny_absolute",
        "daily_limit",
        "rate_limit",
        "tool_timeout",
        "tool_error",
        "invalid_arguments",
        "injection",
        "outcome_unknown",
        "output_invalid",
    }
    for agent in DEMO_AGENTS:
        assert any("injection" in t.covers for t in tasks_for(agent))
    messages = " ".join(str(t.input.get("message")) for t in SAMPLE_TASKS)
    assert "refund $5,000" in messages and "attacker@example.net" in messages


@dataclass
class Outcome:
    resolution: str
    answer: Mapping[str, Any] = field(default_factory=dict)
    decisions: dict[str, list[str]] = field(default_factory=dict)


Reviewer = Callable[[ProposedCall, Decision], "Observation | str | None"]


def nobody(call: ProposedCall, decision: Decision) -> Observation | str | None:
    """No person decides: the run parks on every review."""
    return None


class MediatedLoop:
    """Runs sample tasks as DESIGN.md's gate would, minus persistence.

    ``reviewer`` stands in for the people: for an escalation or an overridable block it returns
    None (the run parks), ``"approve"`` (the call executes) or the observation to record.
    """

    def __init__(
        self, engine: Engine, version: str, registry: ToolRegistry, reviewer: Reviewer = nobody
    ) -> None:
        self.engine = engine
        self.reviewer = reviewer
        self.spec = _spec(version)
        self.registry = registry
        self.client = httpx.Client()
        self.tools: dict[str, Tool] = registry.resolve(self.spec, self.client)
        self.policy = CompiledPolicy(self.spec.policy)
        self.counters = CompiledCounters(self.spec.policy.counters)
        self.checks = CompiledOutputChecks(self.spec.output.checks)
        self.planner = PlaybookPlanner(self.spec.planner)
        self.limits = {r.tool: limits.parse(r.limit).amount for r in self.spec.rate_limits}
        self.hits: Counter[str] = Counter()

    def run(self, task: Mapping[str, Any], run_id: int) -> Outcome:
        outcome = Outcome("unfinished")
        history: list[Turn] = []
        for _ in range(self.spec.budgets.max_planner_turns):
            context = RunContext(
                run_id=run_id,
                task_id=run_id,
                agent="demo",
                task=task,
                tools=[t.spec for t in self.tools.values()],
                history=tuple(history),
            )
            proposal = self.planner.propose(context)
            assert proposal.error is None, proposal.error
            if proposal.final_answer is not None:
                outcome.answer = proposal.final_answer
                outcome.resolution = str(proposal.final_answer["resolution"])
                schema = dict(self.spec.output.schema)
                if validate(schema, outcome.answer) or self.checks.failures(outcome.answer, task):
                    outcome.resolution = "needs_review"  # an output_invalid review
                return outcome
            observations = []
            for call in proposal.calls:
                observation = self._mediate(call, task, run_id, outcome)
                if observation is None:
                    outcome.resolution = "needs_review"
                    return outcome
                observations.append(observation)
            history.append(Turn(proposal, tuple(observations)))
        return outcome

    def _mediate(
        self, call: ProposedCall, task: Mapping[str, Any], run_id: int, outcome: Outcome
    ) -> Observation | None:
        tool = self.tools.get(call.tool)
        if tool is None:
            return Observation(
                call.call_id,
                call.tool,
                "denied",
                {"message": "out of scope"},
                ErrorClass.OUT_OF_SCOPE,
            )
        problems = validate_args(tool.spec, call.args)
        if problems:
            return Observation(
                call.call_id,
                call.tool,
                "error",
                {"message": "; ".join(problems)},
                ErrorClass.INVALID_ARGUMENTS,
            )
        facts = self.registry.facts_for(
            self.spec, FactRequest(self.engine, call.tool, call.args, task, run_id)
        )
        variables = {"args": dict(call.args), "task": dict(task), "run": {}, "facts": facts}
        with self.engine.connect() as connection:  # this loop reserves nothing: all zero
            counters = read_counters(
                connection,
                self.counters.involved(call.tool, None),
                variables,
                agent_id=1,
                run_id=run_id,
                now=utcnow(),
            )
        decision = self.policy.evaluate(call.tool, {**variables, "counters": counters})
        outcome.decisions.setdefault(call.tool, []).append(decision.effect.value)
        if decision.effect is Effect.ESCALATE or decision.override_roles:
            verdict = self.reviewer(call, decision)
            if verdict is None or isinstance(verdict, Observation):
                return verdict
        elif decision.effect is Effect.DENY:
            return Observation(
                call.call_id,
                call.tool,
                "denied",
                {
                    "message": f"denied by rule {decision.rule_id}: {decision.reason}",
                    "rule_id": decision.rule_id,
                },
                ErrorClass.POLICY_DENIED,
            )
        self.hits[call.tool] += 1
        if call.tool in self.limits and self.hits[call.tool] > self.limits[call.tool]:
            return Observation(
                call.call_id,
                call.tool,
                "denied",
                {"message": "rate limited"},
                ErrorClass.RATE_LIMITED,
            )
        return self._execute(tool, call, run_id)

    def _execute(self, tool: Tool, call: ProposedCall, run_id: int) -> Observation | None:
        error: ToolError | None = None
        for attempt in range(1, self.spec.retries.max_attempts + 1):
            ctx = ToolContext(run_id, f"run{run_id}:{call.call_id}", 0.05, self.engine, attempt)
            try:
                result = tool.call(call.args, ctx)
            except ToolError as exc:
                error = exc
                if exc.retryable and tool.spec.idempotent:
                    continue
                break
            assert validate_result(tool.spec, result) == []
            return Observation(call.call_id, call.tool, "ok", result)
        assert error is not None
        if isinstance(error, ToolTimeout) and not tool.spec.idempotent:
            return None  # the outcome is unknown: a person verifies it
        return Observation(
            call.call_id, call.tool, "error", {"message": str(error)}, error.error_class
        )


@pytest.mark.parametrize("agent", [SUPPORT, IT_ACCESS])
def test_sample_tasks_come_out_as_intended_on_version_one(seeded: Engine, agent: str) -> None:
    loop = MediatedLoop(seeded, DEMO_AGENTS[agent][0], installed_registry())
    output_schema = dict(loop.spec.output.schema)
    mismatches = []
    for run_id, sample in enumerate(tasks_for(agent), start=1):
        outcome = loop.run(sample.input, run_id)
        first = {tool: effects[0] for tool, effects in outcome.decisions.items()}
        expected = {tool: first.get(tool) for tool in sample.decisions}
        if outcome.resolution != sample.outcome or expected != dict(sample.decisions):
            mismatches.append((sample.key, outcome.resolution, first, outcome.answer))
        if outcome.resolution != "needs_review":
            assert validate(output_schema, outcome.answer) == [], sample.key
            assert loop.checks.failures(outcome.answer, sample.input) == [], sample.key
    loop.client.close()
    assert mismatches == []


def test_injected_refund_blocked_and_rejected_then_the_real_amount_is_paid(
    seeded: Engine,
) -> None:
    def operator(call: ProposedCall, decision: Decision) -> Observation:
        assert (call.args["amount"], decision.rule_id) == (5000.0, "refund-over-limit")
        return Observation(
            call.call_id,
            call.tool,
            "rejected",
            {"reason": "injected amount", "message": "rejected by ops: injected"},
            ErrorClass.HUMAN_REJECTED,
        )

    loop = MediatedLoop(seeded, "support-v1", installed_registry(), operator)
    sample = next(t for t in SAMPLE_TASKS if t.key == "inject-refund-5000")
    outcome = loop.run(sample.input, 77)
    assert outcome.resolution == "resolved"
    assert outcome.decisions["issue_refund"] == ["deny", "allow"]
    with read_session(seeded) as session:
        refunds = session.exec(select(SupportRefund).where(SupportRefund.run_id == 77)).all()
        emails = session.exec(select(SupportEmail)).all()
    assert [r.amount_cents for r in refunds] == [6500]
    assert [e.to_address for e in emails] == ["yara.moreau@example.com"]
    assert "65.00" in outcome.answer["summary"]


def test_an_approved_escalation_executes_and_the_run_completes(seeded: Engine) -> None:
    approvals: list[str] = []

    def operator(call: ProposedCall, decision: Decision) -> str:
        approvals.append(f"{call.tool}:{decision.rule_id}")
        return "approve"

    loop = MediatedLoop(seeded, "support-v1", installed_registry(), operator)
    sample = next(t for t in SAMPLE_TASKS if t.key == "refund-chair")
    outcome = loop.run(sample.input, 8)
    assert approvals == ["issue_refund:refund-needs-approval"]
    assert outcome.resolution == "resolved"
    assert "O-5004" in outcome.answer["summary"]


def test_version_two_is_stricter_on_the_same_tasks(seeded: Engine) -> None:
    support = MediatedLoop(seeded, "support-v2", installed_registry())
    backpack = next(t for t in SAMPLE_TASKS if t.key == "refund-backpack")
    assert "escalate" in support.run(backpack.input, 5).decisions["issue_refund"]
    it = MediatedLoop(seeded, "it-access-v2", installed_registry())
    terminated = next(t for t in SAMPLE_TASKS if t.key == "access-terminated")
    outcome = it.run(terminated.input, 6)
    assert outcome.resolution == "declined"
    assert "grant-inactive-employee" in outcome.answer["summary"]
    support.client.close()
    it.client.close()


def test_a_failing_fact_provider_makes_the_policy_fail_safe(seeded: Engine) -> None:
    registry = ToolRegistry()

    def directory_down(ctx: FactContext) -> Any:
        raise RuntimeError("the CRM is down")

    registry.register_fact("refunds_today", lambda ctx: 0, inputs=["task.customer_id"])
    registry.register_fact("customer_email", directory_down, inputs=["task.customer_id"])
    registry.register_fact("order_customer", lambda ctx: None, inputs=["args.order_id"])
    registry.register_fact("ticket_customer", lambda ctx: None, inputs=["args.ticket_id"])
    spec = _spec("support-v1")
    args = {"customer_id": "C-1001", "to": "ada.lovelace@example.com"}
    task = {"customer_id": "C-1001"}
    facts = registry.facts_for(spec, FactRequest(seeded, "send_email", args, task))
    assert facts == {"refunds_today": 0, "order_customer": None, "ticket_customer": None}
    decision = CompiledPolicy(spec.policy).evaluate(
        "send_email", {"args": args, "task": task, "facts": facts}
    )
    assert (decision.effect, decision.rule_id) == (Effect.DENY, "email-customer-only")
    assert "could not be evaluated" in decision.reason


def test_sample_task_ids_exist_in_the_seed_data(seeded: Engine) -> None:
    with seeded.connect() as conn:
        ids = {
            column: set(conn.execute(sa.text(f"SELECT {column} FROM {table}")).scalars())
            for table, column in (
                ("support_customers", "customer_id"),
                ("support_orders", "order_id"),
                ("support_tickets", "ticket_id"),
                ("it_employees", "employee_id"),
                ("it_applications", "app_id"),
            )
        }
    deliberate = {"12345", "O-9999", "time-machine"}
    for sample in SAMPLE_TASKS:
        for column, known in ids.items():
            value = sample.input.get(column)
            if isinstance(value, str) and value not in deliberate:
                assert value in known, (sample.key, column, value)
