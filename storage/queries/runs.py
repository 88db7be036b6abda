"""Run lists and one run's full trace, as read models for the CLI and the console.

Every list is paged with LIMIT and selects only the columns it shows, so the console stays fast
on hundreds of thousands of runs: filters on names (agent, version number) become conditions on
the indexed ``runs`` columns instead of joins over every row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from storage.enums import ErrorClass, RunStatus, SideEffect, ToolCallStatus
from storage.models import Agent, AgentVersion, Review, Run, Task, ToolCall
from storage.queries.production import is_production_run
from storage.queries.records import (
    DecisionRecord,
    ReviewRecord,
    TraceStep,
    agent_id_of,
    decision_records,
    review_record,
    trace_steps,
    version_ids_of,
)

__all__ = [
    "LedgerEntry",
    "PinnedVersion",
    "RunFilter",
    "RunRecord",
    "RunSummary",
    "RunTrace",
    "agent_versions",
    "count_by_status",
    "count_runs",
    "page_runs",
    "run_trace",
]


# -- runs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    id: int
    task_id: int
    agent: str
    version: int
    status: str
    error_class: str | None
    steps: int
    agent_time_ms: float
    created_at: datetime
    finished_at: datetime | None
    resolution: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def outcome(self) -> str:
        """The status and, for a run that answered, the answer's resolution: ``succeeded ·
        declined`` is a run that ended well by declining, not a refund made."""
        return f"{self.status} · {self.resolution}" if self.resolution else self.status


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list: each field left None does not filter.

    Attributes:
        agent: only runs of this agent.
        version: only runs pinned to this version number (of ``agent``, when given).
        status: only runs in this status.
        error_class: only runs that ended with this error class.
        since: only runs created at or after this moment.
        until: only runs created before this moment.
        evaluation: only the runs of this evaluation; None: production runs only (an
            evaluation's runs are never listed with production's).
    """

    agent: str | None = None
    version: int | None = None
    status: RunStatus | None = None
    error_class: ErrorClass | None = None
    since: datetime | None = None
    until: datetime | None = None
    evaluation: int | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE conditions on runs this filter stands for."""
        conditions: list[ColumnElement[bool]] = [
            is_production_run()
            if self.evaluation is None
            else col(Run.eval_run_id) == self.evaluation
        ]
        if self.agent:
            conditions.append(col(Run.agent_id) == agent_id_of(self.agent))
        if self.version is not None:
            conditions.append(col(Run.version_id).in_(version_ids_of(self.version, self.agent)))
        if self.status is not None:
            conditions.append(col(Run.status) == self.status)
        if self.error_class is not None:
            conditions.append(col(Run.error_class) == self.error_class)
        if self.since is not None:
            conditions.append(col(Run.created_at) >= self.since)
        if self.until is not None:
            conditions.append(col(Run.created_at) < self.until)
        return conditions


def page_runs(
    flt: RunFilter, *, session: Session, limit: int = 50, offset: int = 0
) -> list[RunSummary]:
    """One page of the runs ``flt`` matches, newest first.

    Args:
        flt: which runs.
        session: the caller's session.
        limit: the page size.
        offset: how many matching runs to skip.
    """
    query = (
        sa.select(
            col(Run.id),
            col(Run.task_id),
            col(Agent.name),
            col(AgentVersion.number),
            col(Run.status),
            col(Run.error_class),
            col(Run.step_count),
            col(Run.agent_time_ms),
            col(Run.created_at),
            col(Run.finished_at),
            col(Run.output)["resolution"].as_string().label("resolution"),
        )
        .join(Agent, col(Agent.id) == col(Run.agent_id))
        .join(AgentVersion, col(AgentVersion.id) == col(Run.version_id))
        .where(*flt.conditions())
        .order_by(col(Run.created_at).desc(), col(Run.id).desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        RunSummary(
            id=row.id,
            task_id=row.task_id,
            agent=row.name,
            version=row.number,
            status=RunStatus(row.status).value,
            error_class=ErrorClass(row.error_class).value if row.error_class else None,
            steps=row.step_count,
            agent_time_ms=round(row.agent_time_ms, 1),
            created_at=row.created_at,
            finished_at=row.finished_at,
            resolution=row.resolution or None,
        )
        for row in session.execute(query)
    ]


def count_runs(flt: RunFilter, *, session: Session) -> int:
    """How many runs ``flt`` matches (counted on the runs table alone, without joins)."""
    query = sa.select(sa.func.count()).select_from(Run).where(*flt.conditions())
    return int(session.execute(query).scalar_one())


def agent_versions(*, session: Session) -> list[tuple[str, int]]:
    """Every (agent, version number) pair, for filter choices; reads the small versions table."""
    rows = session.execute(
        sa.select(col(Agent.name), col(AgentVersion.number))
        .join(Agent, col(Agent.id) == col(AgentVersion.agent_id))
        .order_by(col(Agent.name), col(AgentVersion.number))
    ).all()
    return [(name, number) for name, number in rows]


def count_by_status(*, session: Session) -> dict[str, int]:
    """How many production runs are in each status."""
    rows = session.execute(
        sa.select(col(Run.status), sa.func.count())
        .where(is_production_run())
        .group_by(col(Run.status))
    ).all()
    return {status.value if hasattr(status, "value") else str(status): n for status, n in rows}


# -- one run's trace ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """A run's own row, as the run view heads it."""

    id: int
    task_id: int
    agent: str
    version: int
    version_id: int
    status: RunStatus
    error_class: ErrorClass | None
    error_message: str | None
    output: dict[str, Any] | None
    claims: int
    step_count: int
    agent_time_ms: float
    tokens_in: int
    tokens_out: int
    cost_usd: float
    lease_owner: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # The evaluation the run belongs to; None: production work.
    eval_run_id: int | None = None


@dataclass(frozen=True)
class LedgerEntry:
    """One tool call in the action ledger, with its retries counted in ``attempts``."""

    id: int
    call_id: str
    tool: str
    side_effect: SideEffect
    idempotent: bool
    status: ToolCallStatus
    attempts: int
    error_class: ErrorClass | None
    error_message: str | None
    duration_ms: float | None
    args: dict[str, Any]
    result: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class PinnedVersion:
    """The version a run is pinned to, exactly as stored: its YAML and its policy."""

    id: int
    agent: str
    number: int
    content_hash: str
    policy_hash: str
    source_yaml: str
    policy: dict[str, Any]
    created_by: str
    created_at: datetime

    @property
    def rules(self) -> list[dict[str, Any]]:
        """The policy's rules, in the order they are written."""
        return list(self.policy.get("rules", []))


@dataclass(frozen=True)
class RunTrace:
    """Everything the run view shows about one run."""

    run: RunRecord
    task_input: dict[str, Any]
    version: PinnedVersion
    steps: tuple[TraceStep, ...]
    steps_truncated: bool
    tool_calls: tuple[LedgerEntry, ...]
    reviews: tuple[ReviewRecord, ...]
    decisions: tuple[DecisionRecord, ...]


def run_trace(run_id: int, *, session: Session, step_limit: int = 1000) -> RunTrace | None:
    """One run with its task, pinned version, steps, ledger, reviews and decisions.

    Each part is one query on an index keyed by the run (steps by ``(run_id, seq)``).

    Args:
        run_id: the run.
        session: the caller's session.
        step_limit: at most this many steps, the first ones; ``steps_truncated`` says if more.

    Returns:
        The trace, or None when there is no such run.
    """
    run = session.get(Run, run_id)
    if run is None:
        return None
    task = session.get(Task, run.task_id)
    version = session.get(AgentVersion, run.version_id)
    agent = session.get(Agent, run.agent_id)
    if version is None or agent is None:  # pragma: no cover - foreign keys make this impossible
        return None
    steps = trace_steps(session, run_id, limit=step_limit + 1)
    ledger = session.exec(
        select(ToolCall).where(col(ToolCall.run_id) == run_id).order_by(col(ToolCall.id))
    ).all()
    reviews = session.exec(
        select(Review).where(col(Review.run_id) == run_id).order_by(col(Review.id))
    ).all()
    # A run's reviews are pinned to the run's own version.
    review_records = tuple(review_record(r, (agent.name, version.number)) for r in reviews)
    return RunTrace(
        run=RunRecord(
            id=run_id,
            task_id=run.task_id,
            agent=agent.name,
            version=version.number,
            version_id=run.version_id,
            status=run.status,
            error_class=run.error_class,
            error_message=run.error_message,
            output=run.output,
            claims=run.claims,
            step_count=run.step_count,
            agent_time_ms=run.agent_time_ms,
            tokens_in=run.tokens_in,
            tokens_out=run.tokens_out,
            cost_usd=run.cost_usd,
            lease_owner=run.lease_owner,
            heartbeat_at=run.heartbeat_at,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            eval_run_id=run.eval_run_id,
        ),
        task_input=dict(task.input) if task else {},
        version=PinnedVersion(
            id=run.version_id,
            agent=agent.name,
            number=version.number,
            content_hash=version.content_hash,
            policy_hash=version.policy_hash,
            source_yaml=version.source_yaml,
            policy=dict(version.spec.get("policy", {})),
            created_by=version.created_by,
            created_at=version.created_at,
        ),
        steps=tuple(steps[:step_limit]),
        steps_truncated=len(steps) > step_limit,
        tool_calls=tuple(
            LedgerEntry(
                id=t.id or 0,
                call_id=t.call_id,
                tool=t.tool,
                side_effect=t.side_effect,
                idempotent=t.idempotent,
                status=t.status,
                attempts=t.attempts,
                error_class=t.error_class,
                error_message=t.error_message,
                duration_ms=t.duration_ms,
                args=dict(t.args),
                result=t.result,
                created_at=t.created_at,
            )
            for t in ledger
        ),
        reviews=review_records,
        decisions=decision_records(session, [r.id for r in review_records]),
    )
