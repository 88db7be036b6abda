"""Production work as the production reads see it: evaluation runs left out.

An evaluation's runs live in ``runs`` beside production's (their traces open in the run view),
marked by ``Run.eval_run_id``. Every production read (KPIs, the review queue, run and task
lists, usage, status counts) filters with these conditions, so an evaluation never counts in
production. Conditions on other tables exclude the evaluation runs' ids, a small set served by
the ``ix_runs_eval_run_id`` index, rather than joining every row to its run.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from storage.models import Run, Task


def is_production_run() -> ColumnElement[bool]:
    """A condition on ``runs``: the run is production work, not an evaluation's."""
    return col(Run.eval_run_id).is_(None)


def evaluation_run_ids() -> sa.Select[Any]:
    """The ids of every evaluation's runs."""
    return sa.select(col(Run.id)).where(col(Run.eval_run_id).is_not(None))


def of_production_run(column: Any) -> ColumnElement[bool]:
    """A condition on a run id ``column`` (of steps, the ledger, reviews): a production run's."""
    return col(column).not_in(evaluation_run_ids())


def is_production_task() -> ColumnElement[bool]:
    """A condition on ``tasks``: the task was submitted to production, not by an evaluation
    (an evaluation inserts its task and the task's run together)."""
    return col(Task.id).not_in(sa.select(col(Run.task_id)).where(col(Run.eval_run_id).is_not(None)))
