"""Thirty days of demo traffic, so every trend, comparison and KPI means something on first start.

A history made by running a month of tasks through the runtime would take minutes; this one takes
seconds and is still made of real runs. The demo's tasks run once each, for real, on version 1
and then support's on version 2 (every decision, tool attempt and review in their traces is
what the runtime did), and the reviews they raise are decided by the demo's operators through the
review service. Those runs are the *templates*: each day of the month is then filled with copies
of them (tasks, runs, trace steps, ledger rows, limit reservations, reviews and decisions, with
new ids and idempotency keys), moved to that day's working hours, a person's decision arriving
two minutes to an hour and a half after the review was raised (most within a quarter of an
hour, about one in eight after its one-hour SLA). The month tells a story the pages can show:

- version 2 of the support agent went live eight days into the month and was rolled back a
  week later (its stricter policy escalated more; the deployment history and the KPI trend
  show it);
- the fraud service had an outage on day twenty: a burst of failed fraud checks, and the
  breaker of ``check_fraud_score`` opened (System status and the tool KPIs count it).

Running the templates wrote to the demo's systems of record (refunds paid, tickets closed,
e-mails sent); they are put back to their seed state afterwards, so the sample tasks the seed
queues next behave as documented. Copied human decisions are audit events too, marked as the
demo history's, at the moment the seed wrote them (the audit chain is append-only).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, delete, select

from agent.actors import Actor
from agent.demo import data
from agent.demo.tasks import SAMPLE_TASKS, SampleTask
from agent.errors import ServiceError
from agent.platform import Platform
from agent.reviews import approve, reject
from agent.runtime.claims import claim_next
from agent.runtime.runner import RunProcessor
from agent.tasks import submit_task
from agent.users import actor_for
from agent.versions import activate_version, rollback
from storage.audit import append_event
from storage.engine import read_session, write_connection, write_session
from storage.enums import CircuitState, ErrorClass, ReviewStatus, StepKind
from storage.models import (
    Agent,
    CircuitBreaker,
    Deployment,
    ItAccessGrant,
    ItApplication,
    ItEmployee,
    ItPasswordReset,
    LimitReservation,
    Review,
    ReviewDecision,
    Run,
    Step,
    SupportCustomer,
    SupportEmail,
    SupportFraudSignal,
    SupportOrder,
    SupportRefund,
    SupportTicket,
    Task,
    ToolCall,
)
from storage.tables import table
from storage.types import utcnow

HISTORY_DAYS = 30
V2_FROM_DAY, V2_UNTIL_DAY = 8, 15  # days into the month version 2 was live
V2_AGENTS = ("support",)
OUTAGE_DAY = 20
OWNER = "demo-history"

# The templates: (sample task key, weight). Everyday work weighs most; the rare cases
# (escalations, refusals, injections, invalid input) stay rare.
TEMPLATES: dict[str, tuple[tuple[str, int], ...]] = {
    "support": (
        ("refund-small", 6),
        ("refund-partial", 6),
        ("refund-at-100", 3),
        ("refund-backpack", 5),
        ("status-bookshelf", 6),
        ("status-blanket", 6),
        ("refund-chair", 2),
        ("refund-desk-partial", 2),
        ("refund-laptop", 1),
        ("status-other-address", 1),
        ("delete-account", 1),
        ("fraud-high-risk", 1),
        ("inject-refund-5000", 1),
        ("invalid-negative-amount", 1),
    ),
    "it-access": (
        ("access-wiki", 6),
        ("access-jira", 5),
        ("access-github-read", 4),
        ("reset-password", 5),
        ("access-crm", 2),
        ("access-github-admin", 2),
        ("access-prod-db", 1),
        ("access-terminated", 1),
        ("inject-admin-prod", 1),
        ("invalid-access-level", 1),
    ),
}
OUTAGE_TEMPLATE = ("support", "fraud-error")
PER_DAY = {"support": (14, 5), "it-access": (7, 2)}  # (weekday, weekend) tasks

# Children before parents: what running the templates wrote to the systems of record.
_RECORD_TABLES = (
    SupportRefund,
    SupportEmail,
    SupportTicket,
    SupportFraudSignal,
    SupportOrder,
    SupportCustomer,
    ItPasswordReset,
    ItAccessGrant,
    ItApplication,
    ItEmployee,
)


@dataclass
class HistoryReport:
    """What the history added."""

    days: int = 0
    templates: int = 0
    runs: int = 0
    reviews: int = 0
    by_agent: dict[str, int] = field(default_factory=dict)


def seed_history(
    platform: Platform,
    *,
    operators: Sequence[str],
    days: int = HISTORY_DAYS,
    now: datetime | None = None,
    seed: int = 11,
) -> HistoryReport:
    """Add ``days`` of backdated traffic for the demo agents (both must be on version 1, with
    no suite required yet: version 2 goes live through the activation gate); ``operators``
    (user names) decide the reviews."""
    now = now or utcnow()
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    engineer = actor_for(platform, "erin")
    deciders = [actor_for(platform, name) for name in operators]
    report = HistoryReport(days=days)

    v1 = _run_templates(platform, deciders, TEMPLATES)
    deployments: list[tuple[int, datetime]] = []
    for agent in V2_AGENTS:
        done = activate_version(
            platform, engineer, agent, 2, reason="demo history: a stricter version 2"
        )
        deployments.append((done.id, start + timedelta(days=V2_FROM_DAY, hours=10)))
    v2 = _run_templates(platform, deciders, {a: TEMPLATES[a] for a in V2_AGENTS})
    for agent in V2_AGENTS:
        done = rollback(
            platform,
            engineer,
            agent,
            reason="demo history: version 2 escalated twice as many requests",
        )
        deployments.append((done.id, start + timedelta(days=V2_UNTIL_DAY, hours=16)))
    _reset_records(platform)
    report.templates = len(v1) + len(v2)

    rng = random.Random(seed)  # noqa: S311 - lays out demo traffic, not secrets
    # One transaction for the whole month: a commit per copied run would cost more than the
    # copies themselves.
    with write_connection(platform.engine) as connection:
        copier = _Copier(connection, rng)
        _lay_out(copier, v1, v2, start, days, rng, report)
        copier.flush_audit()
    _backdate_deployments(platform, deployments, start)
    report.runs = copier.runs + report.templates
    report.reviews = copier.reviews
    return report


def _lay_out(  # noqa: PLR0917 - one private step of seed_history, called once
    copier: _Copier,
    v1: Mapping[tuple[str, str], int],
    v2: Mapping[tuple[str, str], int],
    start: datetime,
    days: int,
    rng: random.Random,
    report: HistoryReport,
) -> None:
    """Fill each day with copies of the templates of the version live that day."""
    for day in range(days):
        date = start + timedelta(days=day)
        on_v2 = V2_FROM_DAY <= day < V2_UNTIL_DAY
        for agent, weighted in TEMPLATES.items():
            templates = v2 if on_v2 and agent in V2_AGENTS else v1
            weekday, weekend = PER_DAY[agent]
            count = weekday if date.weekday() < 5 else weekend
            keys = rng.choices(
                [key for key, _ in weighted], weights=[w for _, w in weighted], k=count
            )
            for key in keys:
                run_id = templates.get((agent, key))
                if run_id is not None:
                    copier.copy(run_id, _working_hours(date, rng))
                    report.by_agent[agent] = report.by_agent.get(agent, 0) + 1
        outage = v1.get(OUTAGE_TEMPLATE)
        if day == OUTAGE_DAY and outage is not None:
            for minute in range(0, 48, 6):
                copier.copy(outage, date + timedelta(hours=10, minutes=minute), delay=False)
                report.by_agent["support"] = report.by_agent.get("support", 0) + 1
            _record_outage(copier.connection, date + timedelta(hours=10, minutes=30))
    # The templates themselves move into the month too, as its first day on each version.
    for run_ids, day in ((v1, 0), (v2, V2_FROM_DAY)):
        for run_id in run_ids.values():
            copier.move(run_id, _working_hours(start + timedelta(days=day), rng))


def _samples() -> dict[tuple[str, str], SampleTask]:
    return {(task.agent, task.key): task for task in SAMPLE_TASKS}


def _run_templates(
    platform: Platform,
    deciders: Sequence[Actor],
    templates: Mapping[str, Sequence[tuple[str, int]]],
) -> dict[tuple[str, str], int]:
    """Run each template task of ``templates`` once on the agents' active versions; people
    decide its reviews. Returns the run of each (agent, key)."""
    samples = _samples()
    submitter = deciders[0]
    tasks: dict[int, tuple[str, str]] = {}
    for agent, weighted in templates.items():
        keys = [key for key, _ in weighted]
        if agent == OUTAGE_TEMPLATE[0]:
            keys.append(OUTAGE_TEMPLATE[1])
        for key in keys:
            sample = samples.get((agent, key))
            if sample is None:
                continue
            task_id = submit_task(
                platform, submitter, agent, dict(sample.input), source="demo-history"
            )
            tasks[task_id] = (agent, key)
    processor = RunProcessor(platform, lease_s=60)
    for _ in range(6):  # run, decide, resume: a few rounds settle every template
        while (claim := claim_next(platform.engine, OWNER)) is not None:
            processor.process(claim)
        if not _decide_open(platform, deciders, list(tasks)):
            break
    with read_session(platform.engine) as session:
        runs = session.exec(
            select(Run.task_id, Run.id).where(col(Run.task_id).in_(list(tasks)))
        ).all()
    return {tasks[task_id]: run_id for task_id, run_id in runs if run_id is not None}


def _decide_open(platform: Platform, deciders: Sequence[Actor], task_ids: list[int]) -> bool:
    """Decide the templates' open reviews as the demo's operators would: small amounts and
    ordinary access approved, large amounts, blocks and the rest rejected. Returns whether any
    was decided."""
    with read_session(platform.engine) as session:
        reviews = session.exec(
            select(Review)
            .join(Run, col(Run.id) == col(Review.run_id))
            .where(col(Run.task_id).in_(task_ids))
            .where(col(Review.status).in_(ReviewStatus.open_statuses()))
        ).all()
    decided = False
    for review in reviews:
        amount = (review.args or {}).get("amount")
        large = isinstance(amount, int | float) and amount >= 500
        approving = review.status is ReviewStatus.PENDING and not large
        for person in deciders:  # a rule asking for two people gets a second one
            try:
                if approving:
                    approve(platform, person, review.id or 0, reason="checked the order")
                else:
                    reject(platform, person, review.id or 0, "outside what we refund here")
            except ServiceError:
                continue
            decided = True
            with read_session(platform.engine) as session:
                current = session.get(Review, review.id)
                if current is None or not current.status.is_open:
                    break
    return decided


def _working_hours(day: datetime, rng: random.Random) -> datetime:
    return day + timedelta(hours=8, seconds=rng.randrange(0, 10 * 3600))


@dataclass
class _Graph:
    """A template run's rows, read once."""

    task: dict[str, Any]
    run: dict[str, Any]
    steps: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    reviews: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    reservations: list[dict[str, Any]]

    @property
    def first_review(self) -> datetime | None:
        return min((r["created_at"] for r in self.reviews), default=None)


_TIMES = {
    "tasks": ("created_at", "updated_at"),
    "runs": ("created_at", "started_at", "finished_at", "heartbeat_at", "deadline_at"),
    "steps": ("started_at", "ended_at"),
    "tool_calls": ("created_at", "finished_at"),
    "reviews": ("created_at", "sla_due_at", "decided_at", "applied_at"),
    "review_decisions": ("created_at",),
    "limit_reservations": ("created_at", "released_at"),
}


class _Copier:
    """Copies template runs to other moments, in the database's own ids."""

    def __init__(self, connection: sa.Connection, rng: random.Random) -> None:
        self.connection = connection
        self.rng = rng
        self.graphs: dict[int, _Graph] = {}
        self.runs = 0
        self.reviews = 0
        self.copies = 0
        self._audit: list[tuple[str, str, int]] = []

    def _graph(self, run_id: int) -> _Graph:
        graph = self.graphs.get(run_id)
        if graph is None:
            graph = _read_graph(self.connection, run_id)
            self.graphs[run_id] = graph
        return graph

    def copy(self, run_id: int, at: datetime, *, delay: bool = True) -> None:
        """A new task and run like ``run_id``'s, started ``at``."""
        graph = self._graph(run_id)
        self.copies += 1
        wait = timedelta(minutes=self.rng.triangular(2, 90, 12)) if delay else timedelta(0)
        shift = _Shift(at - graph.run["created_at"], graph.first_review, wait)
        suffix = f":h{self.copies}"
        connection = self.connection
        task_id = _insert_one(connection, "tasks", shift.row("tasks", graph.task))
        run = shift.row("runs", graph.run) | {"task_id": task_id, "canary_id": None}
        new_run = _insert_one(connection, "runs", run)
        steps = _insert_many(
            connection,
            "steps",
            [shift.row("steps", s) | {"run_id": new_run, "parent_id": None} for s in graph.steps],
        )
        step_ids = dict(zip((s["id"] for s in graph.steps), steps, strict=True))
        parents = [
            {"new_id": step_ids[s["id"]], "new_parent": step_ids[s["parent_id"]]}
            for s in graph.steps
            if s["parent_id"] in step_ids
        ]
        if parents:
            connection.execute(_SET_PARENT, parents)
        review_ids: dict[int, int] = {}
        for review in sorted(graph.reviews, key=lambda r: r["id"]):
            row = shift.row("reviews", review) | {
                "run_id": new_run,
                "step_id": step_ids.get(review["step_id"]),
                "parent_id": review_ids.get(review["parent_id"]),
            }
            review_ids[review["id"]] = _insert_one(connection, "reviews", row)
        _insert_many(
            connection,
            "review_decisions",
            [
                shift.row("review_decisions", d) | {"review_id": review_ids[d["review_id"]]}
                for d in graph.decisions
            ],
        )
        _insert_many(
            connection,
            "tool_calls",
            [
                shift.row("tool_calls", c)
                | {
                    "run_id": new_run,
                    "step_id": step_ids.get(c["step_id"]),
                    "review_id": review_ids.get(c["review_id"]),
                    "idempotency_key": c["idempotency_key"] + suffix,
                }
                for c in graph.calls
            ],
        )
        _insert_many(
            connection,
            "limit_reservations",
            [
                shift.row("limit_reservations", r)
                | {"run_id": new_run, "idempotency_key": r["idempotency_key"] + suffix}
                for r in graph.reservations
            ],
        )
        self.runs += 1
        self.reviews += len(graph.reviews)
        for decision in graph.decisions:
            self._audit.append(
                (decision["actor"], str(decision["decision"]), review_ids[decision["review_id"]])
            )

    def move(self, run_id: int, at: datetime) -> None:
        """Move a template run itself (and everything it wrote) to ``at``."""
        graph = self._graph(run_id)
        wait = timedelta(minutes=self.rng.triangular(2, 90, 12))
        shift = _Shift(at - graph.run["created_at"], graph.first_review, wait)
        connection = self.connection
        for name, rows in (
            ("tasks", [graph.task]),
            ("runs", [graph.run]),
            ("steps", graph.steps),
            ("tool_calls", graph.calls),
            ("reviews", graph.reviews),
            ("review_decisions", graph.decisions),
            ("limit_reservations", graph.reservations),
        ):
            handle = _TABLES[name]
            for row in rows:
                full = shift.row(name, row)
                moved = {column: full[column] for column in _TIMES[name]}
                if name == "steps":
                    moved["duration_ms"] = full["duration_ms"]
                connection.execute(
                    sa.update(handle).where(handle.c.id == row["id"]).values(**moved)
                )

    def flush_audit(self) -> None:
        """One audit event per copied human decision, marked as the demo history's."""
        connection = self.connection
        for actor, decision, review_id in self._audit:
            append_event(
                connection,
                actor=actor,
                action=f"review.{decision}",
                target_type="review",
                target_id=review_id,
                payload={"demo_history": True},
            )
        self._audit.clear()


@dataclass(frozen=True)
class _Shift:
    """Moves a run's moments by ``offset``; what happened after its first review also waits
    ``wait`` longer (the person's decision arrives later than the template's did)."""

    offset: timedelta
    review_at: datetime | None
    wait: timedelta

    def time(self, moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        later = self.review_at is not None and moment > self.review_at
        return moment + self.offset + (self.wait if later else timedelta(0))

    def row(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        moved = {k: v for k, v in row.items() if k != "id"}
        for name in _TIMES[table]:
            if name in moved:
                moved[name] = self.time(moved[name])
        if table == "reviews" and moved.get("sla_due_at") is not None and row.get("sla_due_at"):
            moved["sla_due_at"] = row["sla_due_at"] + self.offset  # the due time does not wait
        if table == "steps" and row.get("kind") == StepKind.HUMAN_APPROVAL and self._spans(row):
            # The person's wait is the step's duration: it grows by the added wait.
            moved["duration_ms"] = (row.get("duration_ms") or 0.0) + self.wait / timedelta(
                milliseconds=1
            )
        return moved

    def _spans(self, row: Mapping[str, Any]) -> bool:
        """Whether a step began before the first review and ended after it."""
        started, ended = row.get("started_at"), row.get("ended_at")
        return (
            self.review_at is not None
            and started is not None
            and ended is not None
            and started <= self.review_at < ended
        )


def _tables() -> dict[str, sa.Table]:
    models = (Task, Run, Step, ToolCall, Review, ReviewDecision, LimitReservation)
    return {str(model.__tablename__): table(model) for model in models}


_TABLES = _tables()
_SET_PARENT = (
    sa.update(_TABLES["steps"])
    .where(_TABLES["steps"].c.id == sa.bindparam("new_id"))
    .values(parent_id=sa.bindparam("new_parent"))
)


def _read_graph(connection: sa.Connection, run_id: int) -> _Graph:
    def rows(table: str, condition: Any) -> list[dict[str, Any]]:
        handle = _TABLES[table]
        query = sa.select(handle).where(condition).order_by(handle.c.id)
        return [dict(r._mapping) for r in connection.execute(query)]

    runs, steps, calls = _TABLES["runs"], _TABLES["steps"], _TABLES["tool_calls"]
    run = rows("runs", runs.c.id == run_id)[0]
    reviews = rows("reviews", _TABLES["reviews"].c.run_id == run_id)
    return _Graph(
        task=rows("tasks", _TABLES["tasks"].c.id == run["task_id"])[0],
        run=run,
        steps=rows("steps", steps.c.run_id == run_id),
        calls=rows("tool_calls", calls.c.run_id == run_id),
        reviews=reviews,
        decisions=rows(
            "review_decisions",
            _TABLES["review_decisions"].c.review_id.in_([r["id"] for r in reviews]),
        ),
        reservations=rows("limit_reservations", _TABLES["limit_reservations"].c.run_id == run_id),
    )


def _insert_one(connection: sa.Connection, table: str, row: dict[str, Any]) -> int:
    handle = _TABLES[table]
    return int(connection.execute(sa.insert(handle).returning(handle.c.id), row).scalar_one())


def _insert_many(connection: sa.Connection, table: str, rows: list[dict[str, Any]]) -> list[int]:
    if not rows:
        return []
    handle = _TABLES[table]
    result = connection.execute(
        sa.insert(handle).returning(handle.c.id, sort_by_parameter_order=True), rows
    )
    return [int(row[0]) for row in result]


def _reset_records(platform: Platform) -> None:
    """Put the demo's systems of record back to their seed state."""
    with write_session(platform.engine) as session:
        for model in _RECORD_TABLES:
            session.exec(delete(model))
        session.flush()
        data.seed_records(session)


def _record_outage(connection: sa.Connection, at: datetime) -> None:
    """The fraud service's outage opened its breaker once, then it recovered."""
    breakers = table(CircuitBreaker)
    values = {
        "state": CircuitState.CLOSED,
        "consecutive_failures": 0,
        "opened_at": at,
        "last_error_class": ErrorClass.TOOL_ERROR,
        "updated_at": at + timedelta(minutes=20),
    }
    moved = connection.execute(
        sa.update(breakers)
        .where(breakers.c.tool == "check_fraud_score")
        .values(opened_count=breakers.c.opened_count + 1, **values)
    )
    if not moved.rowcount:
        connection.execute(
            sa.insert(breakers).values(tool="check_fraud_score", opened_count=1, **values)
        )


def _backdate_deployments(
    platform: Platform, moved: Iterable[tuple[int, datetime]], start: datetime
) -> None:
    """The history's deployments at the moments of its story; the seed's first activation of
    each agent just before the month begins."""
    with write_session(platform.engine) as session:
        moments = dict(moved)
        agents = session.exec(select(Agent.id).where(col(Agent.name).in_(list(TEMPLATES)))).all()
        for deployment in session.exec(
            select(Deployment).where(col(Deployment.agent_id).in_(list(agents)))
        ).all():
            at = moments.get(deployment.id or 0)
            if at is None and deployment.reason.startswith("demo seed"):
                at = start - timedelta(hours=1)
            if at is not None:
                deployment.created_at = at
                session.add(deployment)
