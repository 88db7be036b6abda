"""Bulk seeding for the console benchmark: runs, trace steps, ledger rows and reviews at volume.

The demo's users, agents and versions come from ``seed_demo``; everything else is generated
here with Core ``insert()`` executemany batches (never ORM objects one by one), so a million
trace steps take well under the two minutes the benchmark allows for seeding. The shape of each
run mirrors what the runtime writes: an ``invoke_agent`` step, two proposal / guardrail /
tool / observation rounds and a final output, the ledger rows of the two tool calls, and a
review where the policy escalated.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import select

from agent.demo.seed import seed_demo
from agent.platform import Platform
from agent.plugins import installed_registry
from agent.spec import VersionSpec
from agent.users import actor_for
from agent.versions import activate_version
from storage import migrate
from storage.engine import read_session
from storage.enums import (
    DecisionKind,
    ErrorClass,
    ReviewKind,
    ReviewStatus,
    RunStatus,
    SideEffect,
    StepKind,
    StepStatus,
    TaskStatus,
    ToolCallStatus,
)
from storage.models import Agent, AgentVersion, Review, ReviewDecision, Run, Step, Task, ToolCall

# Bump when the generated data changes shape, so a cached database is seeded again.
SEED_FORMAT = 2
STEPS_PER_RUN = 10
CALLS_PER_RUN = 2
BATCH_RUNS = 5_000
DAYS = 30


@dataclass(frozen=True)
class Shape:
    """How many rows to seed."""

    runs: int
    pending: int
    decided: int

    @property
    def steps(self) -> int:
        return self.runs * STEPS_PER_RUN


@dataclass(frozen=True)
class VersionCatalogue:
    """What one agent version may call, and which of its rules allow or escalate each tool."""

    agent_id: int
    agent: str
    version_id: int
    number: int
    policy_hash: str
    allow: tuple[tuple[str, str], ...]  # (tool, rule id)
    escalate: tuple[tuple[str, str], ...]
    deny: tuple[tuple[str, str], ...]


def seed(engine: Engine, shape: Shape, *, now: datetime, seed_value: int = 7) -> None:
    """Migrate an empty database, load the demo, then bulk-insert ``shape`` worth of work."""
    migrate.upgrade(engine)
    platform = Platform(engine, installed_registry())
    try:
        seed_demo(platform, with_tasks=False)
        # Version 2 of each agent took over halfway through the period (see below).
        engineer = actor_for(platform, "erin")
        with read_session(engine) as session:
            agents = session.exec(select(Agent.name)).all()
        for name in agents:
            activate_version(platform, engineer, name, 2, reason="bench: v2 takes over")
    finally:
        platform.close()
    catalogue = _catalogue(engine)
    rng = random.Random(seed_value)
    start = now - timedelta(days=DAYS)
    spacing = timedelta(days=DAYS) / shape.runs
    # The newest runs wait for a person; ``decided`` earlier ones had a review decided.
    first_pending = shape.runs - shape.pending + 1
    decided_share = shape.decided / max(1, first_pending - 1)
    review_id = 0
    decision_id = 0
    for base in range(0, shape.runs, BATCH_RUNS):
        rows: dict[str, list[dict[str, Any]]] = {
            "tasks": [],
            "runs": [],
            "steps": [],
            "tool_calls": [],
            "reviews": [],
            "review_decisions": [],
        }
        for run_id in range(base + 1, min(base + BATCH_RUNS, shape.runs) + 1):
            created = start + spacing * (run_id - 1)
            # The first half of the period ran on version 1, the second half on version 2, so
            # the version comparison has two populations to compare.
            half = 0 if run_id <= shape.runs // 2 else 1
            agent_versions = rng.choice(catalogue)
            version = agent_versions[min(half, len(agent_versions) - 1)]
            if run_id >= first_pending:
                outcome = "waiting"
            elif rng.random() < decided_share and decision_id < shape.decided:
                outcome = "decided"
            else:
                outcome = rng.choices(["succeeded", "tool_failed", "denied"], weights=[90, 6, 4])[0]
            _one_run(
                rows,
                rng,
                run_id=run_id,
                version=version,
                created=created,
                outcome=outcome,
                ids=(review_id + 1, decision_id + 1),
            )
            review_id += outcome in ("waiting", "decided")
            decision_id += outcome == "decided"
        with engine.begin() as conn:
            _insert(conn, rows)


def _insert(conn: Connection, rows: dict[str, list[dict[str, Any]]]) -> None:
    for table in (Task, Run, Step, Review, ReviewDecision, ToolCall):
        name = table.__tablename__
        if rows[str(name)]:
            conn.execute(sa.insert(table.__table__), rows[str(name)])  # type: ignore[attr-defined]


def _catalogue(engine: Engine) -> list[list[VersionCatalogue]]:
    """Per demo agent, its versions in number order with their tools and rules."""
    out: list[list[VersionCatalogue]] = []
    with engine.connect() as conn:
        agents = conn.execute(sa.select(Agent.id, Agent.name).order_by(Agent.name)).all()  # type: ignore[call-overload]
        for agent_id, name in agents:
            versions = conn.execute(
                sa.select(
                    AgentVersion.id,
                    AgentVersion.number,
                    AgentVersion.spec,
                    AgentVersion.policy_hash,
                )  # type: ignore[call-overload]
                .where(AgentVersion.agent_id == agent_id)
                .order_by(AgentVersion.number)
            ).all()
            entries = []
            for version_id, number, document, policy_hash in versions:
                spec = VersionSpec.from_document(document)
                by_effect: dict[str, list[tuple[str, str]]] = {
                    "allow": [],
                    "escalate": [],
                    "deny": [],
                }
                for rule in spec.policy.rules:
                    if "*" not in rule.tool:  # a pattern is not a tool name
                        by_effect[str(rule.effect.value)].append((rule.tool, rule.id))
                entries.append(
                    VersionCatalogue(
                        agent_id=agent_id,
                        agent=name,
                        version_id=version_id,
                        number=number,
                        policy_hash=policy_hash,
                        allow=tuple(by_effect["allow"]),
                        escalate=tuple(by_effect["escalate"]) or tuple(by_effect["allow"]),
                        deny=tuple(by_effect["deny"]) or tuple(by_effect["allow"]),
                    )
                )
            out.append(entries)
    return out


def _one_run(
    rows: dict[str, list[dict[str, Any]]],
    rng: random.Random,
    *,
    run_id: int,
    version: VersionCatalogue,
    created: datetime,
    outcome: str,
    ids: tuple[int, int],
) -> None:
    review_id = ids[0]
    task_input = {
        "intent": "request",
        "customer_id": f"C-{1000 + run_id % 500}",
        "order_id": f"O-{5000 + run_id % 900}",
        "amount": round(rng.uniform(5, 900), 2),
        "message": "Please help with my order; it arrived damaged and I would like a refund.",
    }
    agent_ms = rng.lognormvariate(4.5, 0.6)
    status = {
        "succeeded": RunStatus.SUCCEEDED,
        "decided": RunStatus.SUCCEEDED,
        "tool_failed": RunStatus.FAILED,
        "denied": RunStatus.ESCALATED,
        "waiting": RunStatus.WAITING_REVIEW,
    }[outcome]
    error_class = {
        "tool_failed": ErrorClass.TOOL_ERROR,
        "denied": ErrorClass.BUDGET_EXHAUSTED,
    }.get(outcome)
    finished = created + timedelta(milliseconds=agent_ms) if status.is_terminal else None
    rows["tasks"].append(
        {
            "id": run_id,
            "agent_id": version.agent_id,
            "input": task_input,
            "status": TaskStatus(status.value),
            "priority": 0,
            "submitted_by": "olga",
            "source": "bench",
            "created_at": created,
            "updated_at": finished or created,
        }
    )
    rows["runs"].append(
        {
            "id": run_id,
            "task_id": run_id,
            "agent_id": version.agent_id,
            "version_id": version.version_id,
            "status": status,
            "error_class": error_class,
            "error_message": "the tool failed three times in a row" if error_class else None,
            "output": {"resolution": "resolved", "summary": f"Handled task {run_id}."}
            if status is RunStatus.SUCCEEDED
            else None,
            "claims": 1,
            "step_count": STEPS_PER_RUN,
            "planner_turns": 3,
            "denial_count": int(outcome == "denied"),
            "agent_time_ms": agent_ms,
            "tokens_in": 0,
            "tokens_out": 0,
            "cost_usd": 0.0,
            "created_at": created,
            "started_at": created,
            "finished_at": finished,
        }
    )
    first_step = (run_id - 1) * STEPS_PER_RUN + 1
    steps = rows["steps"]
    step_ms = agent_ms / STEPS_PER_RUN

    def step(
        seq: int, kind: StepKind, name: str, status: StepStatus = StepStatus.OK, **fields: Any
    ) -> int:
        at = created + timedelta(milliseconds=step_ms * (seq - 1))
        steps.append(
            {
                "id": first_step + seq - 1,
                "run_id": run_id,
                "seq": seq,
                "parent_id": None if seq == 1 else first_step,
                "kind": kind,
                "name": name,
                "call_id": fields.get("call_id"),
                "status": status,
                "error_class": fields.get("error_class"),
                "started_at": at,
                "ended_at": at + timedelta(milliseconds=step_ms),
                "duration_ms": step_ms,
                "input": fields.get("input"),
                "output": fields.get("output"),
                "attributes": fields.get("attributes", {}),
            }
        )
        return first_step + seq - 1

    step(
        1,
        StepKind.INVOKE_AGENT,
        version.agent,
        input={"task": task_input},
        output={"status": status.value, "message": None},
        attributes={"agent": version.agent, "version": version.number},
    )
    allowed = rng.choice(version.allow)
    second = {
        "waiting": rng.choice(version.escalate),
        "decided": rng.choice(version.escalate),
        "denied": rng.choice(version.deny),
    }.get(outcome, rng.choice(version.allow))
    seq = 2
    for turn, (tool, rule_id) in enumerate((allowed, second)):
        call_id = f"t{turn}c0"
        args = {"order_id": task_input["order_id"], "amount": task_input["amount"]}
        effect = "allow"
        if turn == 1 and outcome in ("waiting", "decided"):
            effect = "escalate"
        elif turn == 1 and outcome == "denied":
            effect = "deny"
        step(
            seq,
            StepKind.PROPOSAL,
            "playbook",
            input={"turn": turn + 1},
            output={
                "reasoning": f"Call {tool} for order {task_input['order_id']}.",
                "calls": [{"call_id": call_id, "tool": tool, "args": args}],
            },
        )
        guard_status = {"allow": StepStatus.OK, "escalate": StepStatus.ESCALATED}.get(
            effect, StepStatus.DENIED
        )
        guard_id = step(
            seq + 1,
            StepKind.APPLY_GUARDRAIL,
            tool,
            guard_status,
            call_id=call_id,
            error_class=ErrorClass.POLICY_DENIED if effect == "deny" else None,
            input={"tool": tool, "args": args},
            output={"effect": effect, "rule_id": rule_id, "stage": "policy"},
            attributes={"rule_id": rule_id, "effect": effect, "stage": "policy"},
        )
        failed = turn == 1 and outcome == "tool_failed"
        tool_ms = rng.lognormvariate(1.5, 0.8)
        if effect == "deny":
            step(seq + 2, StepKind.REASONING, "planner", input={"denied": rule_id})
        elif effect == "escalate" and outcome == "waiting":
            step(
                seq + 2,
                StepKind.HUMAN_APPROVAL,
                tool,
                StepStatus.ESCALATED,
                call_id=call_id,
                attributes={"review_id": review_id, "rule_id": rule_id, "tier": 1},
            )
        else:
            exec_id = step(
                seq + 2,
                StepKind.EXECUTE_TOOL,
                tool,
                StepStatus.ERROR if failed else StepStatus.OK,
                call_id=call_id,
                error_class=ErrorClass.TOOL_ERROR if failed else None,
                input={"args": args, "attempt": 3 if failed else 1},
                attributes={"attempt": 3 if failed else 1},
            )
            rows["tool_calls"].append(
                {
                    "run_id": run_id,
                    "step_id": exec_id,
                    "review_id": review_id if effect == "escalate" else None,
                    "call_id": call_id,
                    "tool": tool,
                    "idempotency_key": f"run{run_id}:{call_id}",
                    "args": args,
                    "args_hash": _hash(args),
                    "side_effect": SideEffect.READ if turn == 0 else SideEffect.WRITE,
                    "idempotent": turn == 0,
                    "status": ToolCallStatus.FAILED if failed else ToolCallStatus.SUCCEEDED,
                    "attempts": 3 if failed else rng.choices([1, 2], weights=[95, 5])[0],
                    "result": None if failed else {"ok": True, "order_id": args["order_id"]},
                    "error_class": ErrorClass.TOOL_ERROR if failed else None,
                    "error_message": "the service answered 503" if failed else None,
                    "created_at": created,
                    "finished_at": created + timedelta(milliseconds=tool_ms),
                    "duration_ms": tool_ms,
                }
            )
        step(
            seq + 3,
            StepKind.OBSERVATION,
            tool,
            StepStatus.ERROR if failed or effect == "deny" else StepStatus.OK,
            call_id=call_id,
            error_class=ErrorClass.TOOL_ERROR
            if failed
            else (ErrorClass.POLICY_DENIED if effect == "deny" else None),
            output={"call_id": call_id, "tool": tool, "status": "ok"},
        )
        if effect == "escalate":
            _review(
                rows,
                rng,
                run_id=run_id,
                version=version,
                call=(tool, rule_id, args, guard_id),
                created=created,
                ids=ids,
            )
        seq += 4
    step(
        STEPS_PER_RUN,
        StepKind.FINAL_OUTPUT,
        "output contract",
        output={"answer": {"resolution": "resolved"}, "problems": []},
    )


def _review(
    rows: dict[str, list[dict[str, Any]]],
    rng: random.Random,
    *,
    run_id: int,
    version: VersionCatalogue,
    call: tuple[str, str, dict[str, Any], int],
    created: datetime,
    ids: tuple[int, int],
) -> None:
    tool, rule_id, args, step_id = call
    review_id, decision_id = ids
    decided = rows["runs"][-1]["status"] is not RunStatus.WAITING_REVIEW
    decision, status = rng.choices(
        [
            (DecisionKind.APPROVE, ReviewStatus.APPROVED),
            (DecisionKind.EDIT, ReviewStatus.EDITED),
            (DecisionKind.REJECT, ReviewStatus.REJECTED),
        ],
        weights=[80, 8, 12],
    )[0]
    decided_at = created + timedelta(minutes=rng.lognormvariate(2.5, 1.0)) if decided else None
    rows["reviews"].append(
        {
            "id": review_id,
            "run_id": run_id,
            "agent_id": version.agent_id,
            "version_id": version.version_id,
            "step_id": step_id,
            "kind": ReviewKind.ESCALATION,
            "status": status if decided else ReviewStatus.PENDING,
            "call_id": "t1c0",
            "tool": tool,
            "args": args,
            "args_hash": _hash(args),
            "policy_hash": version.policy_hash,
            "rule_id": rule_id,
            "reason": "This action needs an operator's approval.",
            "risk": int(args["amount"]),
            "tier": 1,
            "override_roles": [],
            "sla_due_at": created + timedelta(minutes=60),
            "row_version": 2 if decided else 1,
            "decided_by": "olga" if decided else None,
            "decided_at": decided_at,
            "applied_at": decided_at,
            "created_at": created,
        }
    )
    if decided_at is not None:
        rows["review_decisions"].append(
            {
                "id": decision_id,
                "review_id": review_id,
                "decision": decision,
                "actor": "olga",
                "reason": "checked against the order history",
                "args": args,
                "args_hash": _hash(args),
                "created_at": decided_at,
            }
        )


def _hash(args: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()
