"""Calls proposed by an agent outside Steward, mediated one at a time on a run of their own.

The MCP gateway (``agent.gateway``) gives each client session a task (source ``gateway``) and a
run on the agent's active version. No worker claims such a run: there is no planner to ask.
Instead each call the client makes claims the run, is recorded as the run's next turn, and
goes through the very ``CallHandler`` a planned call takes (scope, arguments, policy, rate
limit, circuit breaker, ledger, execution, trace); then the run is parked again. A call that
escalates leaves a pending review; once a person decided it, the next claim applies the
decision (the approved call executes exactly once, through the gate) and the outcome is read
from the run's history by the call's id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from agent.calls import Observation, ProposedCall
from agent.errors import StewardError
from agent.platform import Platform
from agent.runtime.claims import claim_external_run
from agent.runtime.endings import finish, park
from agent.runtime.loop import RunLoop
from agent.runtime.runner import RunProcessor
from agent.runtime.session import RunSession
from storage.engine import write_connection
from storage.enums import ErrorClass, ReviewStatus, RunStatus, TaskStatus
from storage.tables import REVIEWS, RUNS, TASKS
from storage.types import utcnow

log = logging.getLogger(__name__)

LEASE_S = 300.0
"""How long one external call may hold its run (its tool call is bounded far below this)."""


class RunBusy(StewardError):
    """Another call of the same external run holds it now; try again in a moment."""


@dataclass(frozen=True)
class ExternalOutcome:
    """What became of one externally proposed call.

    Attributes:
        call_id: the call's id in the run.
        observation: what the call came back with (None while a person has not decided).
        review_id: the review it waits for (or waited for).
        run_status: the run's status afterwards.
    """

    call_id: str
    observation: Observation | None
    review_id: int | None
    run_status: RunStatus


class ExternalRuns:
    """Creates external runs and mediates their calls; one per process (thread-safe)."""

    def __init__(self, platform: Platform, *, owner: str) -> None:
        self.platform = platform
        self.owner = owner
        self.processor = RunProcessor(platform, lease_s=LEASE_S)

    def open_run(self, task_id: int, agent_id: int, version_id: int) -> int:
        """A new run of ``task_id`` pinned to ``version_id``, parked until its first call."""
        now = utcnow()
        with write_connection(self.platform.engine) as connection:
            run_id: int = connection.execute(
                sa.insert(RUNS).returning(RUNS.c.id),
                {
                    "task_id": task_id,
                    "agent_id": agent_id,
                    "version_id": version_id,
                    "status": RunStatus.READY,
                    "claims": 0,
                    "created_at": now,
                },
            ).scalar_one()
            connection.execute(
                sa.update(TASKS)
                .where(TASKS.c.id == task_id)
                .values(status=TaskStatus.RUNNING, updated_at=now)
            )
        return run_id

    def call(
        self, run_id: int, tool: str, args: Mapping[str, Any], *, proposer: str
    ) -> ExternalOutcome:
        """Mediate one call on ``run_id`` as the run's next turn.

        Raises:
            RunBusy: another call holds the run.
        """
        loop, run = self._claim(run_id)
        try:
            loop.resume.apply()
            exhausted = loop.over_budget()
            if exhausted:
                # Budgets bind an external agent too: its run ends, and its next call starts
                # a new one (see agent.gateway).
                status = finish(run, RunStatus.ESCALATED, ErrorClass.BUDGET_EXHAUSTED, exhausted)
                refused = Observation(
                    "", tool, "error", {"message": exhausted}, ErrorClass.BUDGET_EXHAUSTED
                )
                return ExternalOutcome("", refused, None, status)
            call = loop.external_turn(ProposedCall("g1", tool, dict(args)), proposer=proposer)
            loop.calls.handle(call)
            observation = _observation(loop, call.call_id)
            status = park(run)
            return ExternalOutcome(
                call.call_id, observation, self._review_of(run_id, call.call_id), status
            )
        except Exception:
            log.exception("external call on run %s failed", run_id)
            raise

    def outcome(self, run_id: int, call_id: str) -> ExternalOutcome:
        """The outcome of an earlier call: applies what people decided since, if anything.

        Raises:
            RunBusy: another call holds the run.
        """
        review_id = self._review_of(run_id, call_id)
        if review_id is not None and self._review_open(review_id):
            return ExternalOutcome(call_id, None, review_id, RunStatus.WAITING_REVIEW)
        loop, run = self._claim(run_id)
        loop.resume.apply()
        observation = _observation(loop, call_id)
        status = park(run)
        return ExternalOutcome(call_id, observation, review_id, status)

    def close_run(self, run_id: int, *, message: str) -> None:
        """End an external run whose client went away (``succeeded``: the client, not
        Steward, judged its own work; what it did is in the trace)."""
        try:
            _, run = self._claim(run_id)
        except RunBusy:
            log.warning("run %s is busy; it is left open", run_id)
            return
        finish(run, RunStatus.SUCCEEDED, output={"resolution": "closed", "summary": message})

    def _claim(self, run_id: int) -> tuple[RunLoop, RunSession]:
        claim = claim_external_run(self.platform.engine, self.owner, run_id, lease_s=LEASE_S)
        if claim is None:
            raise RunBusy(f"run {run_id} is busy with another call; try again in a moment")
        state = self.processor.load(claim)
        run = RunSession(self.platform.engine, state, LEASE_S)
        bundle = self.processor.bundles.get(state.version_id)
        loop = RunLoop(self.platform, bundle, run)
        loop.begin()
        return loop, run

    def _review_of(self, run_id: int, call_id: str) -> int | None:
        with self.platform.engine.connect() as connection:
            found: int | None = connection.execute(
                sa.select(REVIEWS.c.id)
                .where(REVIEWS.c.run_id == run_id)
                .where(REVIEWS.c.call_id == call_id)
                .order_by(REVIEWS.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
        return found

    def _review_open(self, review_id: int) -> bool:
        with self.platform.engine.connect() as connection:
            status = connection.execute(
                sa.select(REVIEWS.c.status).where(REVIEWS.c.id == review_id)
            ).scalar_one()
        return ReviewStatus(status).is_open


def _observation(loop: RunLoop, call_id: str) -> Observation | None:
    for turn in reversed(loop.state.history):
        for observation in reversed(turn.observations):
            if observation.call_id == call_id:
                return observation
    return None
