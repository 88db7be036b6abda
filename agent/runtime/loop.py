"""The run loop of DESIGN.md: plan, decide each call, execute or escalate, observe, until an answer.

``RunLoop.drive`` works on one claimed run until it finishes, parks for a person, or loses its
lease. Its collaborators each do one job: the gate decides a call (``gate``), the ledger holds,
executes and recovers calls (``ledger``), escalation raises reviews (``escalation``), the call
handler takes any call through all three (``calls``), and resume applies people's decisions
(``resume``). Every write goes through the run's fenced ``RunSession``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, replace
from typing import Any

from sqlmodel import col, select

from agent.calls import ProposedCall
from agent.errors import InvalidInput
from agent.planning.base import Planner, Proposal, RunContext, TokenUsage, Turn
from agent.planning.compensation import CompensationPlanner
from agent.platform import Platform
from agent.pricing import price_table
from agent.runtime.bundle import VersionBundle
from agent.runtime.calls import CallHandler
from agent.runtime.endings import finish, park
from agent.runtime.escalation import Escalation
from agent.runtime.gate import CallGate
from agent.runtime.ledger import Ledger
from agent.runtime.records import proposal_to_json, redact
from agent.runtime.resume import Resume
from agent.runtime.session import RunSession
from agent.undo.derive import UNDO_CALL_ID, UNDO_KEY
from storage.engine import read_session
from storage.enums import ErrorClass, RunStatus, StepKind, StepStatus
from storage.models import Review
from storage.types import utcnow

log = logging.getLogger(__name__)

# A final answer whose ``resolution`` is this value hands the task to a person: the run ends
# ``escalated`` (with the class of the last error, if any) instead of ``succeeded``.
HANDED_OFF = "escalated"
_CALL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class RunLoop:
    """Drives one claimed run with its version's bundle."""

    def __init__(
        self,
        platform: Platform,
        bundle: VersionBundle,
        run: RunSession,
        *,
        inline_tools: bool = False,
    ) -> None:
        self.platform = platform
        self.bundle = bundle
        self.version = bundle.version
        self.run = run
        self.state = run.state
        self.escalation = Escalation(run, bundle.version)
        self.gate = CallGate(platform, bundle, run.state)
        self.ledger = Ledger(platform, bundle, run, self.escalation, inline_tools=inline_tools)
        self.calls = CallHandler(run, self.gate, self.ledger, self.escalation)
        self.resume = Resume(run, self.calls, self.ledger, self._over_budget)
        # An undo task (only ``agent.undo`` writes its key) proposes its one compensating call,
        # which then takes the same gate as any call.
        self.planner: Planner = (
            CompensationPlanner(UNDO_KEY, UNDO_CALL_ID)
            if isinstance(self.state.task.get(UNDO_KEY), dict)
            else bundle.planner
        )

    def begin(self) -> None:
        """Queue the run's root step if it has none yet (the first claim of a run)."""
        if self.state.root_step_id is None:
            self.run.start(
                self.version.agent_name,
                self.state.task,
                {
                    "agent": self.version.agent_name,
                    "version": self.version.number,
                    "version_id": self.version.version_id,
                },
            )

    def external_turn(self, call: ProposedCall, *, proposer: str) -> ProposedCall:
        """Record a call proposed outside Steward (an agent behind the MCP gateway) as this
        run's next turn, exactly as a planner's proposal is recorded, and return it with a
        call id unique in the run. The caller then takes it through ``self.calls``."""
        proposal = self._with_unique_call_ids(Proposal.tool_calls(f"proposed by {proposer}", call))
        self.state.planner_turns += 1
        self.run.step(
            StepKind.PROPOSAL,
            proposer,
            StepStatus.OK,
            input={"turn": self.state.planner_turns},
            output=proposal_to_json(proposal),
        )
        self.state.history.append(Turn(proposal))
        return proposal.calls[0]

    def drive(self) -> RunStatus:
        """Advance the run until it finishes or waits; returns the status it was left in."""
        self.begin()
        if not self.state.claim.fresh:
            if self.ledger.recover():
                return park(self.run)
            stopped = self.resume.apply()
            if stopped is not None:
                return stopped
            answered = self.state.history[-1].proposal if self.state.history else None
            if answered is not None and answered.final_answer is not None:
                # The planner's answer was saved but the run stopped before it finished (a
                # crash, a lost lease): finish it now rather than ask the planner again.
                return self._finalize(dict(answered.final_answer))
        while True:
            if self.state.reviews_open or self._paused():
                return park(self.run)
            pending = self._unobserved_calls()
            if not pending:
                exhausted = self.state.turns_exhausted(self.version.spec.budgets)
                if exhausted:
                    return finish(
                        self.run, RunStatus.ESCALATED, ErrorClass.BUDGET_EXHAUSTED, exhausted
                    )
                proposal = self._plan()
                if proposal.final_answer is not None:
                    return self._finalize(dict(proposal.final_answer))
                pending = list(proposal.calls)
            for call in pending:
                if self._paused():
                    # The emergency brake: the calls not yet made wait, like a crash gap,
                    # for the run to be claimed again once the agent is resumed.
                    return park(self.run)
                exhausted = self._over_budget()
                if exhausted:
                    return finish(
                        self.run, RunStatus.ESCALATED, ErrorClass.BUDGET_EXHAUSTED, exhausted
                    )
                self.calls.handle(call)

    def _paused(self) -> bool:
        return self.platform.paused(self.version.agent_id)

    def over_budget(self) -> str | None:
        """The budget the run has used up, if any (checked before every call it makes)."""
        return self._over_budget()

    def _over_budget(self) -> str | None:
        """The budget the run has used up, checked before every call it would make."""
        return self.state.exhausted(self.version.spec.budgets)

    def _unobserved_calls(self) -> list[ProposedCall]:
        """Calls of the last turn with neither an observation nor a review (a crash gap)."""
        if not self.state.history:
            return []
        last = self.state.history[-1]
        seen = {o.call_id for o in last.observations}
        todo = [c for c in last.proposal.calls if c.call_id not in seen]
        if not todo:
            return []
        with read_session(self.run.engine) as session:
            reviewed = set(
                session.exec(
                    select(Review.call_id).where(col(Review.run_id) == self.state.run_id)
                ).all()
            )
        return [c for c in todo if c.call_id not in reviewed]

    def context(self) -> RunContext:
        """What the planner sees for its next turn."""
        spec = self.version.spec
        return RunContext(
            run_id=self.state.run_id,
            task_id=self.state.task_id,
            agent=self.version.agent_name,
            task=self.state.task,
            tools=list(self.version.tool_specs.values()),
            history=tuple(self.state.history),
            # What a planner that calls a model needs to stay inside the run's budgets and
            # answer to its output contract (agent.planning.chat).
            planner_config={
                "version": self.version.number,
                "output_schema": dict(spec.output.schema),
                "model_timeout_s": spec.budgets.model_timeout_s,
                "time_left_s": self.state.time_left_s(spec.budgets),
                "retries": asdict(spec.retries),
            },
        )

    def _plan(self) -> Proposal:
        started = utcnow()
        try:
            proposal = self.planner.propose(self.context())
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
        proposal = self._with_unique_call_ids(proposal)
        self.run.step(
            StepKind.PROPOSAL,
            self.version.spec.planner.kind,
            StepStatus.ERROR if failed else StepStatus.OK,
            error_class=ErrorClass.PLANNER_ERROR if failed else None,
            input={"turn": self.state.planner_turns},
            output=proposal_to_json(proposal),
            attributes={
                **proposal.telemetry,
                "model": usage.model if usage else self.version.spec.planner.model,
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

    def _with_unique_call_ids(self, proposal: Proposal) -> Proposal:
        """The proposal with every call id usable as a key of this run: an id a planner reused
        from an earlier turn or within this one, or one no ledger can hold, gets a new one
        (the history keeps the new id, so a model sees its calls answered under it)."""
        used = {c.call_id for turn in self.state.history for c in turn.proposal.calls}
        calls = []
        for index, call in enumerate(proposal.calls, start=1):
            call_id = call.call_id
            if not isinstance(call_id, str) or not _CALL_ID.match(call_id) or call_id in used:
                call_id = f"t{self.state.planner_turns}c{index}"
                while call_id in used:
                    call_id += "x"
            used.add(call_id)
            calls.append(call if call_id == call.call_id else replace(call, call_id=call_id))
        return replace(proposal, calls=tuple(calls)) if calls else proposal

    def _finalize(self, answer: dict[str, Any]) -> RunStatus:
        problems = self.version.output_problems(answer, self.state.task)
        self.run.step(
            StepKind.FINAL_OUTPUT,
            "output contract",
            StepStatus.ERROR if problems else StepStatus.OK,
            error_class=ErrorClass.OUTPUT_INVALID if problems else None,
            output={"answer": redact(answer), "problems": problems},
        )
        if not problems and answer.get("resolution") == HANDED_OFF:
            # The agent itself gave the task to a person: a valid answer, not a completion.
            return finish(
                self.run,
                RunStatus.ESCALATED,
                self._last_error_class(),
                str(answer.get("summary") or "the agent handed the task to a person"),
                output=answer,
            )
        if not problems:
            return finish(self.run, RunStatus.SUCCEEDED, output=answer)
        self.escalation.output_invalid(answer, problems)
        self.run.commit()
        return park(self.run)

    def _last_error_class(self) -> ErrorClass | None:
        """The error class of the most recent failed observation, if any (why it was handed off)."""
        for turn in reversed(self.state.history):
            for observation in reversed(turn.observations):
                if observation.error_class is not None:
                    return observation.error_class
        return None


def _cost_usd(usage: TokenUsage) -> float:
    """The price of one model call; a broken pricing file costs a log line, never the run."""
    try:
        return price_table().cost_usd(usage.model, usage.prompt_tokens, usage.completion_tokens)
    except InvalidInput:
        log.exception("the cost of a %s call is counted as 0", usage.model)
        return 0.0
