"""Evaluation suites, their cases, and the results of running a version against them.

A suite is code: its YAML source is kept with the validated document and its content hash, and
an evaluation run records the hash of the suite and of the version it ran, which is what the
activation gate checks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.enums import EvalRunStatus
from storage.types import JSONDoc, UTCDateTime, enum_type, utcnow


class EvalSuite(SQLModel, table=True):
    """One agent's named suite of cases; ``required`` ones gate the agent's activations."""

    __tablename__ = "eval_suites"
    __table_args__ = (sa.UniqueConstraint("agent_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agents.id")
    name: str = Field(max_length=128)
    description: str = Field(default="", max_length=2000)
    document: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    source_yaml: str = Field(default="", sa_type=sa.Text)
    content_hash: str = Field(default="", max_length=64)
    required: bool = Field(default=False)
    threshold: float = Field(default=1.0)
    schedule: str | None = Field(default=None, max_length=128)
    # When a worker last took the schedule's turn (so of several workers, one runs it).
    last_scheduled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EvalCase(SQLModel, table=True):
    """A task input with what must come of it, and the shortest known tool path."""

    __tablename__ = "eval_cases"
    __table_args__ = (sa.UniqueConstraint("suite_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    suite_id: int = Field(foreign_key="eval_suites.id")
    name: str = Field(max_length=128)
    input: dict[str, Any] = Field(sa_type=JSONDoc)
    expect: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    tags: list[str] = Field(default_factory=list, sa_type=JSONDoc)
    reviewer: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONDoc)
    repeat: int = Field(default=1)
    shortest_path: int | None = Field(default=None)
    # A case removed from its suite's source: kept for the results that point at it.
    retired: bool = Field(default=False)


class EvalRun(SQLModel, table=True):
    """One evaluation of one version against one suite (every case, ``repeat`` times)."""

    __tablename__ = "eval_runs"
    __table_args__ = (
        sa.Index("ix_eval_runs_suite_created", "suite_id", "created_at"),
        sa.Index("ix_eval_runs_gate", "version_hash", "suite_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    suite_id: int = Field(foreign_key="eval_suites.id")
    version_id: int = Field(foreign_key="agent_versions.id", index=True)
    version_hash: str = Field(default="", max_length=64)
    suite_hash: str = Field(default="", max_length=64)
    status: EvalRunStatus = Field(default=EvalRunStatus.RUNNING, sa_type=enum_type(EvalRunStatus))
    passed: int = Field(default=0)
    failed: int = Field(default=0)
    repeat: int = Field(default=1)
    concurrency: int = Field(default=1)
    trigger: str = Field(default="manual", max_length=32)
    summary: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    error: str | None = Field(default=None, max_length=2000)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EvalResult(SQLModel, table=True):
    """One attempt of one case in one evaluation run, with what failed, in words."""

    __tablename__ = "eval_results"
    __table_args__ = (sa.UniqueConstraint("eval_run_id", "case_id", "attempt"),)

    id: int | None = Field(default=None, primary_key=True)
    eval_run_id: int = Field(foreign_key="eval_runs.id")
    case_id: int = Field(foreign_key="eval_cases.id")
    attempt: int = Field(default=1)
    run_id: int | None = Field(default=None, foreign_key="runs.id")
    passed: bool
    score: float = Field(default=0.0)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    duration_ms: float | None = Field(default=None)
