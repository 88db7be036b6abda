"""Scheduled evaluation: each suite with a ``schedule`` runs on its agent's active version.

A worker job calls ``run_scheduled`` every minute. A suite is due when its cron schedule fired
since its last turn; the turn is taken in a write transaction that locks the suite's row, so of
several workers exactly one runs it. A failing scheduled run is what shows model drift behind an
endpoint: the console shows the latest scheduled result next to the version.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import col, select

from agent.actors import SYSTEM
from agent.errors import ServiceError
from agent.evals.document import schedule_trigger
from agent.evals.service import EvaluationInfo, run_evaluation
from agent.platform import Platform
from storage.engine import write_session
from storage.models import Agent, EvalSuite
from storage.types import utcnow

log = logging.getLogger(__name__)


def due_suites(platform: Platform, *, now: datetime | None = None) -> list[tuple[str, str]]:
    """Take the turn of every suite whose schedule fired since its last turn; returns the
    (agent, suite) pairs this caller must run."""
    moment = now or utcnow()
    taken: list[tuple[str, str]] = []
    with write_session(platform.engine) as session:
        rows = session.exec(
            select(EvalSuite, Agent)
            .join(Agent, col(Agent.id) == col(EvalSuite.agent_id))
            .where(col(EvalSuite.schedule).is_not(None))
            .with_for_update(skip_locked=True, of=EvalSuite)
        ).all()
        for suite, agent in rows:
            since = suite.last_scheduled_at or suite.updated_at
            try:
                fires = schedule_trigger(str(suite.schedule)).get_next_fire_time(None, since)
            except ValueError:
                log.warning(
                    "suite %s of %s has a schedule that is not cron", suite.name, agent.name
                )
                continue
            if fires is None or fires > moment:
                continue
            suite.last_scheduled_at = moment
            session.add(suite)
            taken.append((agent.name, suite.name))
    return taken


def run_scheduled(platform: Platform, *, now: datetime | None = None) -> list[EvaluationInfo]:
    """Run every due suite on its agent's active version; a suite that cannot run (no active
    version, a version the installed tools cannot run) is logged and skipped."""
    results: list[EvaluationInfo] = []
    for agent, suite in due_suites(platform, now=now):
        try:
            results += run_evaluation(platform, SYSTEM, agent, suite=suite, trigger="schedule")
        except ServiceError as exc:
            log.warning("scheduled evaluation of %s, suite %s, did not run: %s", agent, suite, exc)
    return results
