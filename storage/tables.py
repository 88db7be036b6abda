"""Core handles of the tables that hot paths write with prebuilt statements.

The run loop, claims, submissions and audit appends skip the ORM (see
``storage.engine.write_connection``); they build their statements once from these handles.
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from sqlmodel import SQLModel

from storage.enums import TaskStatus
from storage.models import (
    Agent,
    AgentVersion,
    AuditEvent,
    Canary,
    Review,
    Run,
    Step,
    Task,
    ToolCall,
)
from storage.types import utcnow


def table(model: type[SQLModel]) -> sa.Table:
    """The Core table of a SQLModel table model."""
    return cast(sa.Table, model.__table__)  # type: ignore[attr-defined]


AGENTS = table(Agent)
AGENT_VERSIONS = table(AgentVersion)
TASKS = table(Task)
RUNS = table(Run)
STEPS = table(Step)
TOOL_CALLS = table(ToolCall)
REVIEWS = table(Review)
AUDIT_EVENTS = table(AuditEvent)
CANARIES = table(Canary)

TASK_UPDATE = sa.update(TASKS).where(TASKS.c.id == sa.bindparam("task_id"))
"""An update of one task (``task_id``), its SET columns taken from the parameters."""


def set_task_status(connection: sa.Connection, task_id: int, status: TaskStatus) -> None:
    """Move a task to ``status`` inside the caller's transaction."""
    connection.execute(TASK_UPDATE, {"task_id": task_id, "status": status, "updated_at": utcnow()})
