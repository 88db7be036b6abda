"""Submitting work to an agent; the worker turns each queued task into a run.

The task input is checked by ``agent.inputs`` whether it comes as text (the console's form) or
as a mapping (the CLI, scripts): a value the database cannot store, or that would make the run
fail on every claim, is refused here, before it is queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from agent.actors import SUBMIT_ROLES, Actor, require
from agent.errors import InvalidInput, NotFound
from agent.inputs import json_object
from agent.platform import Platform
from agent.undo.derive import UNDO_KEY
from storage.audit import append_event
from storage.engine import write_connection
from storage.enums import TaskStatus
from storage.tables import AGENTS, TASKS

MIN_PRIORITY = 0
MAX_PRIORITY = 100


def submit_task(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    task_input: Mapping[str, Any] | str,
    *,
    priority: int = 0,
    source: str = "api",
) -> int:
    """Queue a task for ``agent_name``; returns the task id.

    Args:
        platform: the installation.
        actor: who submits (an operator, manager or engineer).
        agent_name: the agent to run it.
        task_input: the task, a JSON object as text or as a mapping.
        priority: from ``MIN_PRIORITY`` to ``MAX_PRIORITY``; higher runs first.
        source: where it came from (``cli``, ``console``, ``api``...), for the audit log.

    Raises:
        Forbidden: the actor may not submit work.
        NotFound: there is no such agent.
        InvalidInput: the input is not a non-empty JSON object ``agent.inputs`` accepts, the
            priority is out of range, or the agent has no active version.
    """
    require(actor, SUBMIT_ROLES, f"submit a task to {agent_name}")
    task_input = json_object(task_input, what="the task input")
    if not task_input:
        raise InvalidInput("the task input must be a non-empty JSON object.")
    if UNDO_KEY in task_input:
        raise InvalidInput(
            f"the key {UNDO_KEY!r} is reserved for undo tasks; start an undo with "
            "`steward undo CALL --reason R` or the Undo button of a run."
        )
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidInput(
            f"a priority is from {MIN_PRIORITY} to {MAX_PRIORITY} (higher runs first), "
            f"not {priority}."
        )
    with write_connection(platform.engine) as connection:
        agent = connection.execute(_AGENT_BY_NAME, {"name": agent_name}).first()
        if agent is None:
            raise NotFound(f"there is no agent named {agent_name!r}.")
        if agent.active_version_id is None:
            raise InvalidInput(f"agent {agent_name!r} has no active version; activate one first.")
        task_id: int = connection.execute(
            _NEW_TASK,
            {
                "agent_id": agent.id,
                "input": task_input,
                "status": TaskStatus.QUEUED,
                "priority": priority,
                "submitted_by": actor.name,
                "source": source,
            },
        ).scalar_one()
        append_event(
            connection,
            actor=actor.name,
            action="task.submit",
            target_type="task",
            target_id=task_id,
            payload={"agent": agent_name, "source": source},
        )
        return task_id


# Built once: submitting is on every task's path (see agent.runtime.state).
_AGENT_BY_NAME = sa.select(AGENTS.c.id, AGENTS.c.active_version_id).where(
    AGENTS.c.name == sa.bindparam("name")
)
_NEW_TASK = sa.insert(TASKS).returning(TASKS.c.id)
