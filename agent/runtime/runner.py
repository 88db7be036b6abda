"""Processing claimed runs: load a run's state, drive its loop, and bound runs that keep failing.

``RunProcessor.process`` is what a worker thread calls for every claim. A run is rebuilt from the
database (its trace is its event log), so any worker can continue any run. A claim whose
processing raises is counted on the run; after ``MAX_FAILED_CLAIMS`` the run ends ``failed``
with ``internal_error`` and a message a person can act on, instead of being claimed for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from agent.errors import LeaseLost, ServiceError
from agent.mediation.variables import CallTally
from agent.platform import Platform
from agent.runtime.bundle import BundleCache
from agent.runtime.endings import finish, has_open_review
from agent.runtime.loop import RunLoop
from agent.runtime.records import rebuild_history
from agent.runtime.session import RunSession
from agent.runtime.state import Claim, RunState
from storage.engine import read_session, write_connection
from storage.enums import ErrorClass, RunStatus, StepKind, ToolCallStatus
from storage.models import Run, Step, Task, ToolCall
from storage.tables import RUNS

log = logging.getLogger(__name__)

MAX_FAILED_CLAIMS = 3
"""Claims of one run that may raise before the run is ended ``failed``."""

_FAILED_CLAIM = (
    sa.update(RUNS)
    .where(RUNS.c.id == sa.bindparam("run_id"))
    .where(RUNS.c.lease_owner == sa.bindparam("owner"))
    .where(RUNS.c.claims == sa.bindparam("claim_no"))
    .values(failed_claims=RUNS.c.failed_claims + 1)
    .returning(RUNS.c.failed_claims)
)
_READY_AGAIN = sa.update(RUNS).where(RUNS.c.id == sa.bindparam("run_id"))


class RunProcessor:
    """Drives claimed runs. One instance may serve many threads; state lives per call."""

    def __init__(
        self, platform: Platform, *, lease_s: float = 30.0, inline_tools: bool = False
    ) -> None:
        self.platform = platform
        self.engine = platform.engine
        self.bundles = BundleCache(platform)
        self.lease_s = lease_s
        self.inline_tools = inline_tools

    def process(self, claim: Claim) -> RunStatus:
        """Advance the run until it finishes or waits; returns the status it was left in."""
        try:
            state = self._load(claim)
            run = RunSession(self.engine, state, self.lease_s)
            try:
                bundle = self.bundles.get(state.version_id)
            except ServiceError as exc:
                log.warning(
                    "run %s: version %s cannot be loaded: %s", claim.run_id, state.version_id, exc
                )
                return finish(
                    run,
                    RunStatus.FAILED,
                    ErrorClass.INTERNAL_ERROR,
                    f"the agent version cannot be loaded: {exc}",
                )
            loop = RunLoop(self.platform, bundle, run, inline_tools=self.inline_tools)
            return loop.drive()
        except LeaseLost as exc:
            log.warning("%s", exc)
            return RunStatus.RUNNING
        except Exception as exc:
            log.exception("run %s failed in claim %s", claim.run_id, claim.claim_no)
            return self._failed_claim(claim, exc)

    def _failed_claim(self, claim: Claim, exc: Exception) -> RunStatus:
        """Count a claim whose processing raised: the run is ready again at once, or, after
        ``MAX_FAILED_CLAIMS`` of them, ended ``failed``."""
        message = (
            f"the run failed on {MAX_FAILED_CLAIMS} attempts to process it, last with "
            f"{type(exc).__name__}: {exc}"[:1500]
            + "; see the worker log for the trace, fix the cause, then submit the task again"
        )
        with write_connection(self.engine) as connection:
            failures = connection.execute(
                _FAILED_CLAIM,
                {"run_id": claim.run_id, "owner": claim.owner, "claim_no": claim.claim_no},
            ).scalar_one_or_none()
            if failures is None:
                return RunStatus.RUNNING  # another worker holds it now
            if failures < MAX_FAILED_CLAIMS:
                connection.execute(
                    _READY_AGAIN,
                    {
                        "run_id": claim.run_id,
                        "status": RunStatus.READY,
                        "lease_owner": None,
                        "lease_expires_at": None,
                    },
                )
                return RunStatus.READY
        try:
            return finish(
                RunSession(self.engine, self._bare_state(claim), self.lease_s),
                RunStatus.FAILED,
                ErrorClass.INTERNAL_ERROR,
                message,
            )
        except LeaseLost:
            return RunStatus.RUNNING

    def _bare_state(self, claim: Claim) -> RunState:
        """The run's counters and root step, without the history that may be what fails."""
        with read_session(self.engine) as session:
            row = session.get(Run, claim.run_id)
            if row is None:
                raise LeaseLost(f"run {claim.run_id} does not exist")
            root = session.exec(
                select(Step.id)
                .where(col(Step.run_id) == claim.run_id)
                .where(col(Step.kind) == StepKind.INVOKE_AGENT)
            ).first()
        return _state(claim, row, {}, root_step_id=root)

    def load(self, claim: Claim) -> RunState:
        """The claimed run's state, rebuilt from the database (its trace is its event log).

        Raises:
            LeaseLost: the claim is no longer the run's current one.
        """
        return self._load(claim)

    def _load(self, claim: Claim) -> RunState:
        if claim.fresh and claim.task_input is not None:
            return RunState(
                claim=claim,
                task_id=claim.task_id,
                agent_id=claim.agent_id,
                version_id=claim.version_id,
                task=dict(claim.task_input),
            )
        with read_session(self.engine) as session:
            row = session.get(Run, claim.run_id)
            if row is None or row.lease_owner != claim.owner or row.claims != claim.claim_no:
                raise LeaseLost(f"run {claim.run_id} is not held by {claim.owner}")
            task = session.get(Task, row.task_id)
            steps: Sequence[Step] = ()
            executed: Sequence[ToolCall] = ()
            reviews_open = False
            if not claim.fresh:  # a run this claim just created has no history to read
                steps = session.exec(
                    select(Step).where(col(Step.run_id) == claim.run_id).order_by(col(Step.seq))
                ).all()
                executed = session.exec(
                    select(ToolCall)
                    .where(col(ToolCall.run_id) == claim.run_id)
                    .where(col(ToolCall.status) == ToolCallStatus.SUCCEEDED)
                ).all()
                reviews_open = has_open_review(session.connection(), claim.run_id)
        return _state(
            claim,
            row,
            dict(task.input) if task else {},
            root_step_id=next((s.id for s in steps if s.kind is StepKind.INVOKE_AGENT), None),
            history=rebuild_history(steps),
            reviews_open=reviews_open,
            tally=CallTally.of((ledger.tool, ledger.args) for ledger in executed),
        )


def _state(claim: Claim, row: Run, task: dict[str, Any], **loaded: Any) -> RunState:
    """A run's state from its row (the counters every fenced commit saves) and what else was
    loaded (history, tally, open reviews)."""
    return RunState(
        claim=claim,
        task_id=row.task_id,
        agent_id=row.agent_id,
        version_id=row.version_id,
        task=task,
        step_count=row.step_count,
        planner_turns=row.planner_turns,
        denial_count=row.denial_count,
        rejection_count=row.rejection_count,
        consecutive_failures=row.consecutive_failures,
        agent_time_ms=row.agent_time_ms,
        tokens_in=row.tokens_in,
        tokens_out=row.tokens_out,
        cost_usd=row.cost_usd,
        **loaded,
    )
