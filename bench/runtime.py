"""Runtime throughput on the demo refund path, against no governance and against LangGraph.

Every system runs the same workflow with the same in-process demo tools writing to the same
kind of SQLite systems of record: look up the customer and the order, check the fraud score,
refund, e-mail the customer, close the ticket. One thread each, so the numbers compare the
machinery, not the parallelism.

- **Steward, governed**: tasks submitted and processed by the real run loop with the playbook
  planner: scope, argument validation, CEL policy with facts, rate limits, circuit breaker, the
  action ledger before every write, and every step of the trace persisted to SQLite.
- **No governance**: the same tool calls in a plain loop; nothing is checked or recorded.
- **LangGraph**: the same calls as a ``StateGraph`` with its durable SQLite checkpointer, an
  ``interrupt()`` where Steward's policy escalates (refunds over $100), no policy engine, no
  ledger, no trace beyond the checkpoints; each checkpoint is durable before the next node
  runs (``durability="sync"``). Needs the ``bench`` dependency group (``make bench`` installs
  it). The acceptance target is Steward at 2x LangGraph's tasks per second or more.

Steward and LangGraph each run twice, with every SQLite file of the pair at ``synchronous=NORMAL``
(Steward's default) and at ``FULL`` (SQLite's own default, which SqliteSaver keeps): the level
decides whether a commit waits for an fsync, and LangGraph commits three times as often as
Steward, so the target is judged on pairs at equal durability only.

Also measured: the mediation decision alone (scope, arguments and policy for an
``issue_refund`` call, facts already loaded; then rate limit and circuit breaker), whose p50
must stay under 100 µs. ``STEWARD_BENCH_RUNS`` sets the tasks each system runs (default 300).

The systems take turns in chunks of 25 tasks and each one's rate is its tasks over its summed
time. On a shared machine whose speed drifts by tens of percent from one minute to the next,
turns this short expose every system to the same drift, so the ratio holds still while the
absolute rates move.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).parent))

import yaml
from _table import print_table
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import Actor
from agent.calls import ProposedCall
from agent.demo.seed import VERSIONS_DIR, seed_demo
from agent.mediation.guards import CallContext
from agent.mediation.variables import CallTally, RunFigures, decision_variables
from agent.platform import Platform
from agent.plugins import installed_registry
from agent.runtime.claims import claim_next
from agent.runtime.runner import RunProcessor
from agent.tasks import submit_task
from agent.tools.base import Tool, ToolContext
from agent.versions import activate_version, active_version, create_agent, create_version
from storage import migrate
from storage.engine import create_engine, read_session, write_session
from storage.enums import RunStatus
from storage.models import SupportCustomer, SupportOrder, SupportRefund, SupportTicket

RUNS = int(os.environ.get("STEWARD_BENCH_RUNS", "300"))
CHUNK = 25
if not CHUNK <= RUNS <= 3000:  # the bench's customer and order ids have four digits
    raise SystemExit(f"STEWARD_BENCH_RUNS must be between {CHUNK} and 3000")
MEDIATION_SAMPLES = 20_000
AGENT = "bench-support"
ENGINEER = Actor.of("bench-engineer", ["engineer"])
OPERATOR = Actor.of("bench-operator", ["operator"])
TARGET_RATIO = 2.0
TARGET_MEDIATION_P50_US = 100.0


# -- the data: one customer, order and ticket per task, so no daily limit interferes -----------


def _customer(i: int) -> str:
    return f"C-{2000 + i}"


def _order(i: int) -> str:
    return f"O-{6000 + i}"


def _ticket(i: int) -> str:
    return f"T-{6000 + i}"


def refund_task(i: int) -> dict[str, Any]:
    return {
        "intent": "refund",
        "customer_id": _customer(i),
        "order_id": _order(i),
        "amount": 45.0,
        "ticket_id": _ticket(i),
        "reason": "damaged in transit",
        "message": "The parcel arrived crushed. Please refund $45.",
    }


def refunds_paid(engine: Engine) -> int:
    """How many bench refunds the systems of record hold (every system must pay each once)."""
    with read_session(engine) as session:
        return len(
            session.exec(
                select(SupportRefund.id).where(col(SupportRefund.order_id).like("O-6%"))
            ).all()
        )


def prepare(path: Path, runs: int, synchronous: str = "NORMAL") -> Engine:
    """A migrated SQLite file with the demo, the bench agent and one order per task."""
    engine = create_engine(f"sqlite:///{path}", synchronous=synchronous)
    migrate.upgrade(engine)
    seed_demo(_platform(engine), with_tasks=False)
    with write_session(engine) as session:
        for i in range(runs):
            session.add(
                SupportCustomer(
                    customer_id=_customer(i), name=f"Bench {i}", email=f"bench{i}@example.com"
                )
            )
        session.flush()
        for i in range(runs):
            session.add(
                SupportOrder(
                    order_id=_order(i), customer_id=_customer(i), item="Bench", amount_cents=9000
                )
            )
            session.add(
                SupportTicket(ticket_id=_ticket(i), customer_id=_customer(i), subject="bench")
            )
    document = yaml.safe_load((VERSIONS_DIR / "support-v1.yaml").read_text())
    # The demo's per-minute limits are for people watching; the bench must not be throttled.
    document["rate_limits"] = [
        {"tool": r["tool"], "limit": "1000000/minute"} for r in document["rate_limits"]
    ]
    create_agent(_platform(engine), ENGINEER, AGENT, description="benchmark")
    create_version(_platform(engine), ENGINEER, AGENT, yaml.safe_dump(document))
    activate_version(_platform(engine), ENGINEER, AGENT, 1, reason="benchmark")
    return engine


# -- Steward ------------------------------------------------------------------------------------

_PLATFORMS: dict[Engine, Platform] = {}


def _platform(engine: Engine) -> Platform:
    """One composition root per benchmark database, as one worker process would have."""
    if engine not in _PLATFORMS:
        _PLATFORMS[engine] = Platform(engine, installed_registry())
    return _PLATFORMS[engine]


def steward_governed(engine: Engine, tasks: range) -> float:
    """Seconds to submit and run ``tasks`` through the governed run loop."""
    processor = RunProcessor(_platform(engine), lease_s=60)
    start = time.perf_counter()
    for i in tasks:
        submit_task(_platform(engine), OPERATOR, AGENT, refund_task(i), source="bench")
        claim = claim_next(engine, "bench")
        assert claim is not None
        status = processor.process(claim)
        assert status is RunStatus.SUCCEEDED, (i, status)
    return time.perf_counter() - start


def mediation_timings(engine: Engine) -> tuple[list[float], list[float]]:
    """Microseconds per decision: authorize (scope, arguments, policy) and admit (limits)."""
    with read_session(engine) as session:
        info, _spec = active_version(AGENT, session=session)
    bundle = RunProcessor(_platform(engine)).bundles.get(info.id)
    call = ProposedCall(
        "c1",
        "issue_refund",
        {"customer_id": _customer(0), "order_id": _order(0), "amount": 45.0, "reason": "bench"},
    )
    facts = {
        "refunds_today": 0,
        "customer_email": "bench0@example.com",
        "order_customer": _customer(0),
        "ticket_customer": _customer(0),
    }
    variables = decision_variables(
        call.args,
        refund_task(0),
        RunFigures(1, steps=4),
        CallTally(),
        bundle.version.agent_variables(),
    )
    context = CallContext(variables, lambda _names: facts, lambda _names: {"refunds_today": 0})
    authorize, admit = [], []
    for _ in range(MEDIATION_SAMPLES):
        start = time.perf_counter()
        gate = bundle.mediator.authorize(call, context)
        authorize.append((time.perf_counter() - start) * 1e6)
        assert gate.decision.allowed, gate.decision
        start = time.perf_counter()
        gate = bundle.mediator.admit(call)
        admit.append((time.perf_counter() - start) * 1e6)
        assert gate.decision.allowed, gate.decision
    return authorize, admit


# -- the same calls with nothing around them ----------------------------------------------------


def _call_tools(
    tools: dict[str, Tool], engine: Engine, run_id: int, task: dict[str, Any]
) -> dict[str, Any]:
    def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
        ctx = ToolContext(run_id, f"plain{run_id}:{name}", 2.0, engine)
        return tools[name].call(args, ctx)

    customer = call("lookup_customer", {"customer_id": task["customer_id"]})
    call("lookup_order", {"order_id": task["order_id"]})
    fraud = call("check_fraud_score", {"order_id": task["order_id"]})
    if fraud["risk"] == "high":
        return {"resolution": "escalated"}
    refund = call(
        "issue_refund",
        {
            "customer_id": task["customer_id"],
            "order_id": task["order_id"],
            "amount": task["amount"],
            "reason": task["reason"],
        },
    )
    call(
        "send_email",
        {
            "customer_id": task["customer_id"],
            "to": customer["email"],
            "subject": f"Your refund for order {task['order_id']}",
            "body": f"We refunded {refund['amount']} USD.",
        },
    )
    call("close_ticket", {"ticket_id": task["ticket_id"], "resolution": "refunded"})
    return {"resolution": "resolved", "refund_id": refund["refund_id"]}


def ungoverned(engine: Engine, tasks: range) -> float:
    """Seconds to make the same tool calls for ``tasks`` in a plain loop."""
    with read_session(engine) as session:
        _info, spec = active_version(AGENT, session=session)
    tools = installed_registry().resolve(spec, _platform(engine).http)
    start = time.perf_counter()
    for i in tasks:
        assert _call_tools(tools, engine, i + 1, refund_task(i))["resolution"] == "resolved"
    return time.perf_counter() - start


# -- LangGraph ----------------------------------------------------------------------------------


class RefundState(TypedDict, total=False):
    task: dict[str, Any]
    customer: dict[str, Any]
    order: dict[str, Any]
    fraud: dict[str, Any]
    approved: bool
    refund: dict[str, Any]
    email: dict[str, Any]
    ticket: dict[str, Any]
    resolution: str


def langgraph_time(
    engine: Engine, checkpoints: Path, tasks: range, synchronous: str
) -> float | str:
    """Seconds to run ``tasks`` through the graph, or why LangGraph cannot run here.

    Checkpoints are durable before the next node runs (``durability="sync"``), on a connection
    at SQLite's ``synchronous`` level given (the saver itself leaves SQLite's default, FULL).
    """
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph
        from langgraph.types import interrupt
    except ImportError:
        return "not installed (make bench installs the bench group)"

    with read_session(engine) as session:
        _info, spec = active_version(AGENT, session=session)
    tools = installed_registry().resolve(spec, _platform(engine).http)

    def tool_node(name: str, key: str, args: Callable[[RefundState], dict[str, Any]]) -> Any:
        def node(state: RefundState) -> dict[str, Any]:
            task_no = int(state["task"]["order_id"].split("-")[1])
            ctx = ToolContext(task_no, f"lg{task_no}:{name}", 2.0, engine)
            return {key: tools[name].call(args(state), ctx)}

        return node

    def approval(state: RefundState) -> dict[str, Any]:
        # Where Steward's policy escalates (over $100), the graph pauses for a person.
        if state["task"]["amount"] > 100:
            return {"approved": bool(interrupt({"refund": state["task"]["amount"]}))}
        return {"approved": True}

    def route(state: RefundState) -> str:
        return "approval" if state["fraud"]["risk"] != "high" else END

    graph = StateGraph(RefundState)
    graph.add_node(
        "lookup_customer",
        tool_node(
            "lookup_customer", "customer", lambda s: {"customer_id": s["task"]["customer_id"]}
        ),
    )
    graph.add_node(
        "lookup_order",
        tool_node("lookup_order", "order", lambda s: {"order_id": s["task"]["order_id"]}),
    )
    graph.add_node(
        "check_fraud",
        tool_node("check_fraud_score", "fraud", lambda s: {"order_id": s["task"]["order_id"]}),
    )
    graph.add_node("approval", approval)
    graph.add_node(
        "issue_refund",
        tool_node(
            "issue_refund",
            "refund",
            lambda s: {
                "customer_id": s["task"]["customer_id"],
                "order_id": s["task"]["order_id"],
                "amount": s["task"]["amount"],
                "reason": s["task"]["reason"],
            },
        ),
    )
    graph.add_node(
        "send_email",
        tool_node(
            "send_email",
            "email",
            lambda s: {
                "customer_id": s["task"]["customer_id"],
                "to": s["customer"]["email"],
                "subject": f"Your refund for order {s['task']['order_id']}",
                "body": f"We refunded {s['refund']['amount']} USD.",
            },
        ),
    )
    graph.add_node(
        "close_ticket",
        tool_node(
            "close_ticket",
            "ticket",
            lambda s: {"ticket_id": s["task"]["ticket_id"], "resolution": "refunded"},
        ),
    )
    graph.add_edge(START, "lookup_customer")
    graph.add_edge("lookup_customer", "lookup_order")
    graph.add_edge("lookup_order", "check_fraud")
    graph.add_conditional_edges("check_fraud", route, ["approval", END])
    graph.add_edge("approval", "issue_refund")
    graph.add_edge("issue_refund", "send_email")
    graph.add_edge("send_email", "close_ticket")
    graph.add_edge("close_ticket", END)

    connection = sqlite3.connect(checkpoints, check_same_thread=False)
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    try:
        app = graph.compile(checkpointer=SqliteSaver(connection))
        start = time.perf_counter()
        for i in tasks:
            config = {"configurable": {"thread_id": f"task-{i}"}}
            out = app.invoke({"task": refund_task(i)}, config, durability="sync")  # type: ignore[call-overload]
            assert out["ticket"]["status"] == "closed", out
        return time.perf_counter() - start
    finally:
        connection.close()


# -- report -------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class System:
    label: str
    synchronous: str
    run: Callable[[Engine, Path, range], float | str]


def _steward(synchronous: str) -> System:
    return System(
        "Steward (policy, ledger, full trace)",
        synchronous,
        lambda engine, _folder, tasks: steward_governed(engine, tasks),
    )


def _graph(synchronous: str) -> System:
    checkpoints = f"checkpoints-{synchronous.lower()}.db"
    return System(
        "LangGraph + SqliteSaver (durability=sync)",
        synchronous,
        lambda engine, folder, tasks: langgraph_time(
            engine, folder / checkpoints, tasks, synchronous
        ),
    )


SYSTEMS = {
    "steward": _steward("NORMAL"),
    "graph": _graph("NORMAL"),
    "steward-full": _steward("FULL"),
    "graph-full": _graph("FULL"),
    "plain": System(
        "same tools, no governance, no trace",
        "NORMAL",
        lambda engine, _folder, tasks: ungoverned(engine, tasks),
    ),
}
# (Steward, LangGraph, what the pair shares): the target holds for pairs at equal durability.
PAIRS = [
    ("steward", "graph", "both synchronous=NORMAL (Steward's default)"),
    ("steward-full", "graph-full", "both synchronous=FULL (SqliteSaver's default)"),
]


def main() -> None:
    seconds: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    missing = ""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        engines = {
            name: prepare(root / f"{name}.db", RUNS, system.synchronous)
            for name, system in SYSTEMS.items()
        }
        for first in range(0, RUNS, CHUNK):
            tasks = range(first, min(first + CHUNK, RUNS))
            for name, system in SYSTEMS.items():
                spent = system.run(engines[name], root, tasks)
                if isinstance(spent, str):
                    missing = spent
                else:
                    seconds[name].append(spent)
        for name, engine in engines.items():
            if seconds[name]:
                assert refunds_paid(engine) == RUNS, name
        authorize, admit = mediation_timings(engines["steward"])
        for platform in _PLATFORMS.values():
            platform.close()
        _PLATFORMS.clear()
        for engine in engines.values():
            engine.dispose()

    rate = {name: RUNS / sum(spent) for name, spent in seconds.items() if spent}
    print(
        f"{RUNS} refund tasks per system in turns of {CHUNK}, one thread, "
        "SQLite (WAL) files in a temp folder\n"
    )
    rows: list[list[object]] = []
    for name, system in SYSTEMS.items():
        if name in rate:
            rows.append([system.label, system.synchronous, rate[name], 1000 / rate[name]])
        else:
            rows.append([system.label, system.synchronous, missing, ""])
    print_table(["workflow", "SQLite synchronous", "tasks/s", "ms/task"], rows)

    print()
    p50 = statistics.median(authorize)
    verdict = "PASS" if p50 < TARGET_MEDIATION_P50_US else "FAIL"
    print_table(
        ["mediation decision (µs)", "p50", "p99", "target"],
        [
            [
                "authorize: scope, arguments, policy",
                p50,
                _pct(authorize, 0.99),
                f"p50 < {TARGET_MEDIATION_P50_US:g}: {verdict}",
            ],
            ["admit: rate limit, circuit breaker", statistics.median(admit), _pct(admit, 0.99), ""],
        ],
    )
    ratios: list[list[object]] = []
    judged = [(*pair, True) for pair in PAIRS]
    for steward, graph, shared, equal in [
        *judged,
        ("steward", "graph-full", "each at its default", False),
    ]:
        if steward not in rate or graph not in rate:
            continue
        turns = [g / s for s, g in zip(seconds[steward], seconds[graph], strict=True)]
        ratio = rate[steward] / rate[graph]
        ratios.append(
            [
                f"Steward / LangGraph, {shared}",
                f"{ratio:.2f}x",
                f"{min(turns):.2f}x to {max(turns):.2f}x",
                f">= {TARGET_RATIO:g}x: {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}"
                if equal
                else "unequal durability, not a verdict",
            ]
        )
    if ratios:
        print()
        print_table(["throughput ratio", "ratio", "per turn", "target"], ratios)


if __name__ == "__main__":
    main()
