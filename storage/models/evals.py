"""Evaluation suites, their cases, and the results of running a version against them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.enums import EvalRunStatus
from storage.types import JSONDoc, UTCDateTime, enum_type, utcnow


class EvalSuite(SQLModel, table=True):
    __tablename__ = "eval_suites"
    __table_args__ = (sa.UniqueConstraint("agent_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agents.id")
    name: str = Field(max_length=128)
    description: str = Field(default="", max_length=2000)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EvalCase(SQLModel, table=True):
    """A task input with the outcome it must produce, and the shortest known tool path."""

    __tablename__ = "eval_cases"
    __table_args__ = (sa.UniqueConstraint("suite_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    suite_id: int = Field(foreign_key="eval_suites.id")
    name: str = Field(max_length=128)
    input: dict[str, Any] = Field(sa_type=JSONDoc)
    expect: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    shortest_path: int | None = Field(default=None)


class EvalRun(SQLModel, table=True):
    __tablename__ = "eval_runs"
    __table_args__ = (sa.Index("ix_eval_runs_suite_created", "suite_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    suite_id: int = Field(foreign_key="eval_suites.id")
    version_id: int = Field(foreign_key="agent_versions.id", index=True)
    status: EvalRunStatus = Field(default=EvalRunStatus.RUNNING, sa_type=enum_type(EvalRunStatus))
    passed: int = Field(default=0)
    failed: int = Field(default=0)
    summary: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EvalResult(SQLModel, table=True):
    __tablename__ = "eval_results"
    __table_args__ = (sa.UniqueConstraint("eval_run_id", "case_id"),)

    id: int | None = Field(default=None, primary_key=True)
    eval_run_id: int = Field(foreign_key="eval_runs.id")
    case_id: int = Field(foreign_key="eval_cases.id")
    run_id: int | None = Field(default=None, foreign_key="runs.id")
    passed: bool
    score: float = Field(default=0.0)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDoc)
    duration_ms: float | None = Field(default=None)
