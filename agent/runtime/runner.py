"""The run loop of DESIGN.md: plan, mediate, execute or escalate, observe, until a final answer.

``RunProcessor.process`` works on one claimed run until it finishes, parks for a person, or
loses its lease. Everything it does is a step in the trace and every write is fenced by the
lease, so a worker killed at any instant loses nothing: another one picks the run up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from agent.binding import args_hash
from agent.calls import Effect, Observation, ProposedCall
from agent.errors import InvalidInput, LeaseLost
from agent.planning.base import Proposal, RunContext, TokenUsage, Turn
from agent.platform import Platform
from agent.pricing import price_table
from agent.runtime import calls
from agent.runtime.bundle import BundleCache, VersionBundle
from agent.runtime.records import proposal_to_json, rebuild_history, redact
from agent.runtime.state import Claim, RunSession, RunState
from storage.engine import read_session
from storage.enums import (
    ErrorClass,
    ReviewKind,
    ReviewStatus,
    RunStatus,
    StepKind,
    StepStatus,
    TaskStatus,
    ToolCallStatus,
)
from storage.models import Review, Run, Step, Task, ToolCall
from storage.tables import REVIEWS, RUNS, STEPS, set_task_status
from storage.types import utcnow

log = logging.getLogger(__name__)

# A final answer whose ``resolution`` is this value hands the task to a person: the run ends
# ``escalated`` (with the class of the last error, if any) instead of ``succeeded``.
HANDED_OFF = "escalated"

_TASK_STATUS = {
    RunStatus.SUCCEEDED: TaskStatus.SUCCEEDED,
    RunStatus.FAILED: TaskStatus.FAILED,
    RunStatus.ESCALATED: TaskStatus.ESCALATED,
    RunStatus.CANCELLED: TaskStatus.CANCELLED,
    RunStatus.WAITING_REVIEW: TaskStatus.WAITING_REVIEW,
}


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
            except Exception as exc:
                log.exception("run %s: version %s cannot be loaded", claim.run_id, state.version_id)
                return _fail_unloadable(run, f"the agent version cannot be loaded: {exc}")
            return _Loop(self, bundle, run).drive()
        except LeaseLost as exc:
            log.warning("%s", exc)
            return RunStatus.RUNNING

    def _load(self, claim: Claim) -> RunState:
        if claim.fresh and claim.task_input is not None:
            return RunState(
                claim=claim,
                task_id=claim.task_id,
                agent_id=claim.agent_id,
                version_id=claim.version_id,
                task=dict(claim.task_input),
                step_count=0,
                planner_turns=0,
                denial_count=0,
                rejection_count=0,
                consecutive_failures=0,
                agent_time_ms=0.0,
                tokens_in=0,
                tokens_out=0,
                cost_usd=0.0,
            )
        with read_session(self.engine) as session:
            row = session.get(Run, claim.run_id)
            if row is None or row.lease_owner != claim.owner or row.claims != claim.claim_no:
                raise LeaseLost(f"run {claim.run_id} is not held by {claim.owner}")
            task = session.get(Task, row.task_id)
            steps: Sequence[Step] = ()
            succeeded: Sequence[ToolCall] = ()
            reviews_open = False
            if not claim.fresh:  # a run this claim just created has no history to read
                steps = session.exec(
                    select(Step).where(col(Step.run_id) == claim.run_id).order_by(col(Step.seq))
                ).all()
                succeeded = session.exec(
                    select(ToolCall)
                    .where(col(ToolCall.run_id) == claim.run_id)
                    .where(col(ToolCall.status) == ToolCallStatus.SUCCEEDED)
                ).all()
                reviews_open = _open_review(session.connection(), claim.run_id)
        state = RunState(
            claim=claim,
            task_id=row.task_id,
            agent_id=row.agent_id,
            version_id=row.version_id,
            task=dict(task.input) if task else {},
            step_count=row.step_count,
            planner_turns=row.planner_turns,
            denial_count=row.denial_count,
            rejection_count=row.rejection_count,
            consecutive_failures=row.consecutive_failures,
            agent_time_ms=row.agent_time_ms,
            tokens_in=row.tokens_in,
            tokens_out=row.tokens_out,
            cost_usd=row.cost_usd,
            root_step_id=next((s.id for s in steps if s.kind is StepKind.INVOKE_AGENT), None),
            history=rebuild_history(steps),
            reviews_open=reviews_open,
        )
        for ledger in succeeded:
            state.count_success(ledger.tool, ledger.args)
        return state


class _Loop:
    def __init__(self, processor: RunProcessor, bundle: VersionBundle, run: RunSession) -> None:
        self.p = processor
        self.bundle = bundle
        self.run = run
        self.state = run.state

    # -- the loop ---------------------------------------------------------------------------

    def drive(self) -> RunStatus:
        if self.state.root_step_id is None:
            self._start()
        if not self.state.claim.fresh:
            stopped = calls.recover_in_flight(self) or calls.apply_decisions(self)
            if stopped is not None:
                return stopped
            answered = self.state.history[-1].proposal if self.state.history else None
            if answered is not None and answered.final_answer is not None:
                # The planner's answer was saved but the run stopped before it finished (a
                # crash, a lost lease): finish it now rather than ask the planner again.
                return self._finalize(dict(answered.final_answer))
        while True:
            if self._has_open_reviews():
                return self.park()
            exhausted = self._exhausted_budget()
            if exhausted:
                return self.finish(RunStatus.ESCALATED, ErrorClass.BUDGET_EXHAUSTED, exhausted)
            pending = self._unobserved_calls()
            if pending:
                for call in pending:
                    calls.process_call(self, call)
                continue
            proposal = self._plan()
            if proposal.final_answer is not None:
                return self._finalize(dict(proposal.final_answer))
            for call in proposal.calls:
                calls.process_call(self, call)

    def _start(self) -> None:
        # Saved with the run's first commit: nothing happened yet that a crash could lose.
        self.run.start(
            {
                "parent_id": None,
                "kind": StepKind.INVOKE_AGENT,
                "name": self.bundle.version.agent_name[:128],
                "call_id": None,
                "status": StepStatus.RUNNING,
                "error_class": None,
                "started_at": utcnow(),
                "ended_at": None,
                "duration_ms": None,
                "input": redact({"task": self.state.task}),
                "output": None,
                "attributes": {
                    "agent": self.bundle.version.agent_name,
                    "version": self.bundle.version.number,
                    "version_id": self.bundle.version.version_id,
                },
            }
        )

    def _has_open_reviews(self) -> bool:
        return self.state.reviews_open

    def _exhausted_budget(self) -> str | None:
        budgets = self.bundle.version.spec.budgets
        s = self.state
        if s.step_count >= budgets.max_steps:
            return f"the run used its {budgets.max_steps} steps"
        if s.planner_turns >= budgets.max_planner_turns:
            return f"the planner used its {budgets.max_planner_turns} turns"
        if s.elapsed_agent_ms() > budgets.run_deadline_s * 1000:
            return f"the run passed its {budgets.run_deadline_s:g} s deadline"
        if s.denial_count > budgets.max_denials:
            return f"{s.denial_count} calls were denied (budget {budgets.max_denials})"
        if s.rejection_count > budgets.max_rejections:
            return f"{s.rejection_count} calls were rejected (budget {budgets.max_rejections})"
        if s.consecutive_failures >= budgets.max_consecutive_failures:
            return (
                f"{s.consecutive_failures} failures in a row (budget "
                f"{budgets.max_consecutive_failures})"
            )
        return None

    def _unobserved_calls(self) -> list[ProposedCall]:
        """Calls of the last turn with neither an observation nor a review (a crash gap)."""
        if not self.state.history:
            return []
        last = self.state.history[-1]
        seen = {o.call_id for o in last.observations}
        todo = [c for c in last.proposal.calls if c.call_id not in seen]
        if not todo:
            return []
        with read_session(self.p.engine) as session:
            reviewed = set(
                session.exec(
                    select(Review.call_id).where(col(Review.run_id) == self.state.run_id)
                ).all()
            )
        return [c for c in todo if c.call_id not in reviewed]

    def context(self) -> RunContext:
        spec = self.bundle.version.spec
        time_left_s = spec.budgets.run_deadline_s - self.state.elapsed_agent_ms() / 1000.0
        return RunContext(
            run_id=self.state.run_id,
            task_id=self.state.task_id,
            agent=self.bundle.version.agent_name,
            task=self.state.task,
            tools=list(self.bundle.version.tool_specs.values()),
            history=tuple(self.state.history),
            # What a planner that calls a model needs to stay inside the run's budgets and
            # answer to its output contract (agent.planning.chat).
            planner_config={
                "version": self.bundle.version.number,
                "output_schema": dict(spec.output.schema),
                "model_timeout_s": spec.budgets.model_timeout_s,
                "time_left_s": max(time_left_s, 0.0),
                "retries": asdict(spec.retries),
            },
        )

    def _plan(self) -> Proposal:
        started = utcnow()
        try:
            proposal = self.bundle.planner.propose(self.context())
        except Exception as exc:
            log.exception("planner of run %s failed", self.state.run_id)
            proposal = Proposal.failed(f"the planner raised {type(exc).__name__}: {exc}")
        ended = utcnow()
        self.state.planner_turns += 1
        usage = proposal.usage
        cost_usd = 0.0
        if usage is not None:
            self.state.tokens_in += usage.prompt_tokens
            self.state.tokens_out += usage.completion_tokens
            cost_usd = _cost_usd(usage)
            self.state.cost_usd += cost_usd
        failed = proposal.error is not None or (
            proposal.final_answer is None and not proposal.calls
        )
        if failed:
            self.state.consecutive_failures += 1
            if proposal.error is None:
                proposal = Proposal.failed("the planner proposed neither calls nor an answer")
        self.run.step(
            StepKind.PROPOSAL,
            self.bundle.version.spec.planner.kind,
            StepStatus.ERROR if failed else StepStatus.OK,
            error_class=ErrorClass.PLANNER_ERROR if failed else None,
            input={"turn": self.state.planner_turns},
            output=proposal_to_json(proposal),
            attributes={
                **proposal.telemetry,
                "model": usage.model if usage else self.bundle.version.spec.planner.model,
                "prompt_tokens": usage.prompt_tokens if usage else 0,
                "completion_tokens": usage.completion_tokens if usage else 0,
                "cost_usd": cost_usd,
            },
            started_at=started,
            ended_at=ended,
            duration_ms=(ended - started).total_seconds() * 1000,
        )
        if usage is not None:
            # A proposal that cost a model call is saved at once, so a crash does not pay for it
            # twice; a deterministic planner's proposal is cheaper to redo than to save.
            self.run.commit()
        self.state.history.append(Turn(proposal))
        return proposal

    def observe(self, observation: Observation) -> None:
        """Queue an observation step and add it to the in-memory history."""
        from agent.runtime.records import observation_to_json

        self.run.step(
            StepKind.OBSERVATION,
            observation.tool,
            StepStatus.OK if observation.status == "ok" else StepStatus.ERROR,
            call_id=observation.call_id,
            error_class=observation.error_class,
            output=observation_to_json(observation),
        )
        for index in range(len(self.state.history) - 1, -1, -1):
            turn = self.state.history[index]
            if any(c.call_id == observation.call_id for c in turn.proposal.calls):
                self.state.history[index] = Turn(turn.proposal, (*turn.observations, observation))
                break

    # -- endings ----------------------------------------------------------------------------

    def _finalize(self, answer: dict[str, Any]) -> RunStatus:
        problems = self.bundle.version.output_problems(answer, self.state.task)
        self.run.step(
            StepKind.FINAL_OUTPUT,
            "output contract",
            StepStatus.ERROR if problems else StepStatus.OK,
            error_class=ErrorClass.OUTPUT_INVALID if problems else None,
            output={"answer": redact(answer), "problems": problems},
        )
        if not problems and answer.get("resolution") == HANDED_OFF:
            # The agent itself gave the task to a person: a valid answer, not a completion.
            return self.finish(
                RunStatus.ESCALATED,
                self._last_error_class(),
                str(answer.get("summary") or "the agent handed the task to a person"),
                output=answer,
            )
        if not problems:
            return self.finish(RunStatus.SUCCEEDED, output=answer)

        self.run.insert(
            REVIEWS,
            self.new_review(
                kind=ReviewKind.OUTPUT_INVALID,
                status=ReviewStatus.PENDING,
                call_id=None,
                tool=None,
                args=answer,
                rule_id="output-contract",
                reason="The final answer does not meet the output contract: " + "; ".join(problems),
                sla_minutes=60,
            ),
        )
        self.run.commit()
        return self.park()

    def new_review(
        self,
        *,
        kind: ReviewKind,
        status: ReviewStatus,
        call_id: str | None,
        tool: str | None,
        args: Any,
        rule_id: str | None,
        reason: str,
        sla_minutes: float | None,
        override_roles: tuple[str, ...] = (),
        risk: int = 0,
        tier: int = 1,
    ) -> dict[str, Any]:
        """The row of a new review of this run, for ``RunSession.insert``."""
        stored = redact(args) if args is not None else None
        self.state.reviews_open = True
        review = Review(
            run_id=self.state.run_id,
            agent_id=self.state.agent_id,
            version_id=self.state.version_id,
            kind=kind,
            status=status,
            call_id=call_id,
            tool=tool,
            args=stored,
            args_hash=args_hash(stored) if stored is not None else None,
            policy_hash=self.bundle.version.policy.hash,
            rule_id=rule_id,
            reason=reason[:2000],
            risk=risk,
            tier=tier,
            override_roles=list(override_roles),
            sla_due_at=utcnow() + timedelta(minutes=sla_minutes or 60),
        )
        return review.model_dump(exclude={"id"})

    def park(self) -> RunStatus:
        """Wait for people: release the lease; the run is claimable again once they decide."""
        parked = RunStatus.WAITING_REVIEW

        def wait_or_resume(connection: sa.Connection) -> None:
            # The fenced update above locked the run row. A decision that committed before it
            # saw the run still running and could not resume it; if every review is decided
            # by now, the run is ready again instead of waiting for nobody.
            nonlocal parked
            if _open_review(connection, self.state.run_id):
                set_task_status(connection, self.state.task_id, TaskStatus.WAITING_REVIEW)
                return
            parked = RunStatus.READY
            connection.execute(_RUN_STATUS, {"run_id": self.state.run_id, "status": parked})

        self.run.commit(
            wait_or_resume,
            status=RunStatus.WAITING_REVIEW,
            lease_owner=None,
            lease_expires_at=None,
        )
        return parked

    def _last_error_class(self) -> ErrorClass | None:
        """The error class of the most recent failed observation, if any (why it was handed off)."""
        for turn in reversed(self.state.history):
            for observation in reversed(turn.observations):
                if observation.error_class is not None:
                    return observation.error_class
        return None

    def finish(
        self,
        status: RunStatus,
        error_class: ErrorClass | None = None,
        message: str | None = None,
        *,
        output: dict[str, Any] | None = None,
    ) -> RunStatus:
        now = utcnow()

        step_status = StepStatus.OK if status is RunStatus.SUCCEEDED else StepStatus.ERROR

        def close(connection: sa.Connection) -> None:
            set_task_status(connection, self.state.task_id, _TASK_STATUS[status])
            root_id = self.state.root_step_id  # read now: the same commit may insert the root
            if root_id is not None:
                connection.execute(
                    _ROOT_CLOSE,
                    {
                        "step_id": root_id,
                        "status": step_status,
                        "error_class": error_class,
                        "ended_at": now,
                        "duration_ms": self.state.elapsed_agent_ms(),
                        "output": {"status": status.value, "message": message},
                    },
                )

        self.run.commit(
            close,
            status=status,
            error_class=error_class,
            error_message=message,
            output=redact(output) if output is not None else None,
            finished_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        return status

    def decision_effect_status(self, effect: Effect) -> StepStatus:
        return {
            Effect.ALLOW: StepStatus.OK,
            Effect.ESCALATE: StepStatus.ESCALATED,
            Effect.DENY: StepStatus.DENIED,
        }[effect]


def _cost_usd(usage: TokenUsage) -> float:
    """The price of one model call; a broken pricing file costs a log line, never the run."""
    try:
        return price_table().cost_usd(usage.model, usage.prompt_tokens, usage.completion_tokens)
    except InvalidInput:
        log.exception("the cost of a %s call is counted as 0", usage.model)
        return 0.0


def _fail_unloadable(run: RunSession, message: str) -> RunStatus:
    """End a run whose version cannot be built (say, a tool no longer registered)."""
    run.commit(
        lambda connection: set_task_status(connection, run.state.task_id, TaskStatus.FAILED),
        status=RunStatus.FAILED,
        error_class=ErrorClass.INTERNAL_ERROR,
        error_message=message[:2000],
        finished_at=utcnow(),
        lease_owner=None,
        lease_expires_at=None,
    )
    return RunStatus.FAILED


# Built once (see agent.runtime.state); each takes its SET columns from the parameters.
_RUN_STATUS = sa.update(RUNS).where(RUNS.c.id == sa.bindparam("run_id"))
_ROOT_CLOSE = sa.update(STEPS).where(STEPS.c.id == sa.bindparam("step_id"))
_OPEN_REVIEW = (
    sa.select(REVIEWS.c.id)
    .where(REVIEWS.c.run_id == sa.bindparam("run_id"))
    .where(REVIEWS.c.status.in_([ReviewStatus.PENDING, ReviewStatus.BLOCKED]))
    .limit(1)
)


def _open_review(connection: sa.Connection, run_id: int) -> bool:
    return connection.execute(_OPEN_REVIEW, {"run_id": run_id}).first() is not None
