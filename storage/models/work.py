"""Tasks, the runs that carry them out, their trace steps, and the action ledger of tool calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.enums import (
    ErrorClass,
    RunStatus,
    SideEffect,
    StepKind,
    StepStatus,
    TaskStatus,
    ToolCallStatus,
)
from storage.types import JSONDoc, UTCDateTime, enum_type, utcnow


class Task(SQLModel, table=True):
    """A unit of work submitted to an agent; its latest run decides its status."""

    __tablename__ = "tasks"
    __table_args__ = (
        sa.Index("ix_tasks_status_created", "status", "priority", "created_at"),
        # Claims leave the gateway's tasks alone (``agent.runtime.claims``): a few rows by index.
        sa.Index("ix_tasks_source", "source"),
    )

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agents.id", index=True)
    input: dict[str, Any] = Field(sa_type=JSONDoc)
    status: TaskStatus = Field(default=TaskStatus.QUEUED, sa_type=enum_type(TaskStatus))
    priority: int = Field(default=0)
    submitted_by: str = Field(max_length=64)
    source: str = Field(default="api", max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Run(SQLModel, table=True):
    """One execution of a task, pinned to the agent version it started on.

    A worker owns a run only while its lease is unexpired; an expired lease makes the run
    claimable again, which is how a killed worker's run is resumed elsewhere.
    """

    __tablename__ = "runs"
    __table_args__ = (
        sa.Index("ix_runs_listing", "agent_id", "version_id", "status", "created_at"),
        sa.Index("ix_runs_claim", "status", "lease_expires_at"),
        sa.Index("ix_runs_created", "created_at"),
        sa.Index("ix_runs_errors", "error_class", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id", index=True)
    agent_id: int = Field(foreign_key="agents.id")
    version_id: int = Field(foreign_key="agent_versions.id")
    status: RunStatus = Field(default=RunStatus.READY, sa_type=enum_type(RunStatus))
    error_class: ErrorClass | None = Field(default=None, sa_type=enum_type(ErrorClass))
    error_message: str | None = Field(default=None, max_length=2000)
    output: dict[str, Any] | None = Field(default=None, sa_type=JSONDoc)
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The evaluation this run belongs to (None: production work). Evaluation runs are claimed
    # only by their evaluation, and count in no production KPI or queue.
    eval_run_id: int | None = Field(default=None, foreign_key="eval_runs.id", index=True)
    # The canary release whose population this run belongs to (either arm: its version says
    # which), so the comparison reads exactly the runs the canary routed.
    canary_id: int | None = Field(default=None, foreign_key="canaries.id", index=True)
    claims: int = Field(default=0)
    # Claims whose processing raised: a run failing on every claim ends ``failed`` after a few
    # instead of being claimed again each lease for ever.
    failed_claims: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    step_count: int = Field(default=0)
    planner_turns: int = Field(default=0)
    denial_count: int = Field(default=0)
    rejection_count: int = Field(default=0)
    consecutive_failures: int = Field(default=0)
    agent_time_ms: float = Field(default=0.0)
    tokens_in: int = Field(default=0)
    tokens_out: int = Field(default=0)
    cost_usd: float = Field(default=0.0)
    deadline_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Step(SQLModel, table=True):
    """One entry of a run's trace: reasoning, proposal, guardrail, tool attempt, human decision."""

    __tablename__ = "steps"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "seq"),
        # KPIs: a range's guardrail decisions, and its error breakdown from the index alone.
        sa.Index("ix_steps_kind_run", "kind", "run_id"),
        sa.Index("ix_steps_errors", "error_class", "kind", "run_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    seq: int
    parent_id: int | None = Field(default=None, foreign_key="steps.id")
    kind: StepKind = Field(sa_type=enum_type(StepKind))
    name: str = Field(max_length=128)
    call_id: str | None = Field(default=None, max_length=64)
    status: StepStatus = Field(sa_type=enum_type(StepStatus))
    error_class: ErrorClass | None = Field(default=None, sa_type=enum_type(ErrorClass))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_ms: float | None = Field(default=None)
    input: dict[str, Any] | None = Field(default=None, sa_type=JSONDoc)
    output: dict[str, Any] | None = Field(default=None, sa_type=JSONDoc)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)


class ToolCall(SQLModel, table=True):
    """The action ledger: a row is committed with its idempotency key before the tool runs."""

    __tablename__ = "tool_calls"
    __table_args__ = (
        sa.Index("ix_tool_calls_tool_created", "tool", "created_at"),
        sa.Index("ix_tool_calls_run", "run_id", "created_at"),
        # KPIs: tool health and latency percentiles without reading the wide ledger rows.
        sa.Index("ix_tool_calls_health", "tool", "duration_ms", "status", "attempts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    step_id: int | None = Field(default=None, foreign_key="steps.id")
    review_id: int | None = Field(default=None, foreign_key="reviews.id")
    call_id: str = Field(max_length=64)
    tool: str = Field(max_length=128)
    idempotency_key: str = Field(max_length=128, unique=True)
    args: dict[str, Any] = Field(sa_type=JSONDoc)
    args_hash: str = Field(max_length=64)
    side_effect: SideEffect = Field(sa_type=enum_type(SideEffect))
    idempotent: bool = Field(default=False)
    status: ToolCallStatus = Field(
        default=ToolCallStatus.IN_FLIGHT, sa_type=enum_type(ToolCallStatus)
    )
    attempts: int = Field(default=0)
    result: dict[str, Any] | None = Field(default=None, sa_type=JSONDoc)
    error_class: ErrorClass | None = Field(default=None, sa_type=enum_type(ErrorClass))
    error_message: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_ms: float | None = Field(default=None)


class Compensation(SQLModel, table=True):
    """An undo a person started for an executed call: a new task whose one call is the tool's
    compensating tool, with arguments derived from the original call and its result.

    It records an *attempted* compensation; whether the effect was reversed is what the undo
    task's own ledger row (its ``call_id`` in that task's run) says, never this row.
    """

    __tablename__ = "compensations"

    id: int | None = Field(default=None, primary_key=True)
    original_call_id: int = Field(foreign_key="tool_calls.id", index=True)
    original_run_id: int = Field(foreign_key="runs.id", index=True)
    task_id: int = Field(foreign_key="tasks.id", unique=True, index=True)
    call_id: str = Field(max_length=64)
    tool: str = Field(max_length=128)
    args: dict[str, Any] = Field(sa_type=JSONDoc)
    reason: str = Field(max_length=2000)
    requested_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
