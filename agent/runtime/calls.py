"""One proposed call through the gate and the ledger; recovery after a crash; human decisions.

These functions are the run loop's hands. Each ends in a fenced commit of the run session, so
the trace, the ledger and the run's counters always move together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import col, select

from agent.mediation.decision import Effect
from agent.planning.base import Observation, ProposedCall
from agent.runtime.executor import Execution, execute
from agent.runtime.records import args_hash, redact
from agent.runtime.state import Work
from agent.tools.registry import FactContext
from agent.tools.validation import validate_result
from storage.engine import read_session
from storage.enums import (
    ErrorClass,
    ReviewKind,
    ReviewStatus,
    RunStatus,
    SideEffect,
    StepKind,
    StepStatus,
    ToolCallStatus,
)
from storage.models import Review, ReviewDecision, ToolCall
from storage.tables import REVIEWS
from storage.tables import TOOL_CALLS as LEDGER
from storage.types import utcnow

if TYPE_CHECKING:
    from agent.runtime.runner import _Loop

log = logging.getLogger(__name__)

_RISK_BASE = {SideEffect.READ: 0, SideEffect.WRITE: 1000, SideEffect.IRREVERSIBLE: 2000}
_APPROVED = (ReviewStatus.APPROVED, ReviewStatus.EDITED, ReviewStatus.OVERRIDDEN)

# Built once (see agent.runtime.state): the ledger is written for every call. Updates find a
# row by its idempotency key (unique) and take their SET columns from the parameters.
_LEDGER_FINISH = (
    sa.update(LEDGER)
    .where(LEDGER.c.idempotency_key == sa.bindparam("key"))
    .values(attempts=LEDGER.c.attempts + sa.bindparam("added_attempts"))
)
_LEDGER_SET = sa.update(LEDGER).where(LEDGER.c.idempotency_key == sa.bindparam("key"))
_REVIEW_APPLIED = sa.update(REVIEWS).where(REVIEWS.c.id == sa.bindparam("review_id"))


@dataclass(frozen=True)
class LedgerEntry:
    """One call as the ledger knows it; ``written`` when its row is already stored (a
    side-effecting call's row is committed before the tool runs, a read's with its outcome)."""

    call_id: str
    tool: str
    args: dict[str, Any]
    idempotency_key: str
    review_id: int | None
    written: bool

    @classmethod
    def stored(cls, row: ToolCall) -> LedgerEntry:
        return cls(row.call_id, row.tool, dict(row.args), row.idempotency_key, row.review_id, True)


def process_call(loop: _Loop, call: ProposedCall) -> None:
    """Mediate one proposed call and act on the decision."""
    bundle, state = loop.bundle, loop.state
    args = dict(call.args) if isinstance(call.args, Mapping) else {}
    variables = {
        "args": args,
        "task": state.task,
        "run": state.run_variables(),
        "agent": bundle.agent_variables(),
    }

    def load_facts(names: frozenset[str] | None) -> dict[str, Any]:
        try:
            return bundle.registry.facts_for(
                bundle.spec,
                FactContext(
                    engine=loop.p.engine,
                    tool=call.tool,
                    args=args,
                    task=state.task,
                    run_id=state.run_id,
                ),
                only=names,
            )
        except Exception:
            log.warning("facts for %s in run %s failed", call.tool, state.run_id, exc_info=True)
            return {}

    gate = bundle.mediator.authorize(call, variables, load_facts)
    decision = gate.decision
    loop.run.step(
        StepKind.APPLY_GUARDRAIL,
        call.tool,
        loop.decision_effect_status(decision.effect),
        call_id=call.call_id,
        error_class=decision.error_class if decision.effect is Effect.DENY else None,
        input={"tool": call.tool, "args": redact(call.args)},
        output={
            "effect": decision.effect.value,
            "rule_id": decision.rule_id,
            "reason": decision.reason,
            "stage": decision.stage,
            "stages": gate.trace(),
        },
        attributes={
            "rule_id": decision.rule_id,
            "effect": decision.effect.value,
            "stage": decision.stage,
        },
        duration_ms=sum(s.duration_us for s in gate.stages) / 1000.0,
    )
    if decision.effect is Effect.DENY:
        state.denial_count += 1
        if decision.stage == "policy" and decision.override_roles:
            review = loop.new_review(
                kind=ReviewKind.BLOCK,
                status=ReviewStatus.BLOCKED,
                call_id=call.call_id,
                tool=call.tool,
                args=args,
                rule_id=decision.rule_id,
                reason=decision.reason,
                sla_minutes=None,
                override_roles=decision.override_roles,
                risk=_risk(loop, call.tool, args),
            )
            loop.run.insert(REVIEWS, review)
            loop.run.commit()
            return
        loop.observe(
            Observation(
                call.call_id,
                call.tool,
                "error" if decision.error_class is ErrorClass.INVALID_ARGUMENTS else "denied",
                {
                    "message": f"denied by rule {decision.rule_id}: {decision.reason}",
                    "rule_id": decision.rule_id,
                },
                decision.error_class,
            )
        )
        loop.run.commit()
        return
    if decision.effect is Effect.ESCALATE:
        review = loop.new_review(
            kind=ReviewKind.ESCALATION,
            status=ReviewStatus.PENDING,
            call_id=call.call_id,
            tool=call.tool,
            args=args,
            rule_id=decision.rule_id,
            reason=decision.reason,
            sla_minutes=decision.sla_minutes,
            risk=_risk(loop, call.tool, args),
        )
        loop.run.insert(REVIEWS, review)
        loop.run.commit()
        return
    admit_and_execute(loop, call.call_id, call.tool, args, review_id=None)


def _risk(loop: _Loop, tool: str, args: Mapping[str, Any]) -> int:
    """Queue order within the same SLA: side-effect class first, then the amount at stake."""
    spec = loop.bundle.tool_specs.get(tool)
    base = _RISK_BASE[spec.side_effect] if spec else 0
    amount = args.get("amount")
    at_stake = int(min(float(amount), 999.0)) if isinstance(amount, int | float) else 0
    return base + at_stake


def admit_and_execute(
    loop: _Loop, call_id: str, tool_name: str, args: dict[str, Any], *, review_id: int | None
) -> None:
    """Rate limit and circuit breaker, then the ledger and the tool itself."""
    bundle, state = loop.bundle, loop.state
    admission = bundle.mediator.admit(ProposedCall(call_id, tool_name, args))
    if not admission.decision.allowed:
        denied = admission.decision
        state.denial_count += 1
        loop.run.step(
            StepKind.APPLY_GUARDRAIL,
            tool_name,
            StepStatus.DENIED,
            call_id=call_id,
            error_class=denied.error_class,
            output={
                "effect": "deny",
                "rule_id": denied.rule_id,
                "reason": denied.reason,
                "stage": denied.stage,
                "stages": admission.trace(),
            },
            attributes={"rule_id": denied.rule_id, "effect": "deny", "stage": denied.stage},
        )
        loop.observe(
            Observation(
                call_id,
                tool_name,
                "denied",
                {"message": denied.reason, "rule_id": denied.rule_id},
                denied.error_class,
            )
        )
        loop.run.commit(_mark_applied(review_id))
        return
    tool = bundle.tools[tool_name]
    key = f"run{state.run_id}:{call_id}"
    ledger = LedgerEntry(
        call_id, tool_name, args, key, review_id, written=tool.spec.has_side_effects
    )
    if ledger.written:
        # Committed before the tool runs: after a crash this row says the call may have happened.
        loop.run.insert(LEDGER, _ledger_row(loop, ledger))
        loop.run.commit()
    execution = execute(
        tool,
        args,
        run_id=state.run_id,
        idempotency_key=key,
        timeout_s=bundle.spec.budgets.call_timeout_s,
        retries=bundle.spec.retries,
        engine=loop.p.engine,
        inline=loop.p.inline_tools,
    )
    finish_call(loop, ledger, execution)


def finish_call(loop: _Loop, ledger: LedgerEntry, execution: Execution) -> None:
    """Record attempts, the ledger outcome and the observation in one commit."""
    bundle, state = loop.bundle, loop.state
    spec = bundle.tool_specs[ledger.tool]
    for attempt in execution.attempts:
        loop.run.step(
            StepKind.EXECUTE_TOOL,
            ledger.tool,
            StepStatus.OK if attempt.error_class is None else StepStatus.ERROR,
            call_id=ledger.call_id,
            error_class=attempt.error_class,
            input={"args": redact(ledger.args), "attempt": attempt.number},
            output={"error": attempt.error} if attempt.error else None,
            attributes={"attempt": attempt.number, "idempotency_key": ledger.idempotency_key},
            duration_ms=attempt.duration_ms,
        )
    review_id = ledger.review_id
    result = redact(execution.result) if execution.result is not None else None
    # The call tells the tool's breaker what it says about the tool's health, once (its
    # retries are one piece of evidence), with its input, so one bad input cannot trip it.
    bundle.breakers.record(
        ledger.tool, execution.health, execution.error_class, input_key=args_hash(ledger.args)
    )
    if execution.ok and result is not None:
        status = ToolCallStatus.SUCCEEDED
        problems = validate_result(spec, execution.result)
        if problems:
            state.consecutive_failures += 1
            loop.observe(
                Observation(
                    ledger.call_id,
                    ledger.tool,
                    "error",
                    {
                        "message": "the result does not match the tool's contract: "
                        + "; ".join(problems[:3])
                    },
                    ErrorClass.TOOL_ERROR,
                )
            )
        else:
            state.consecutive_failures = 0
            state.count_success(ledger.tool, ledger.args)
            loop.observe(Observation(ledger.call_id, ledger.tool, "ok", result))
    elif (
        execution.error_class is ErrorClass.TOOL_TIMEOUT
        and spec.has_side_effects
        and not spec.idempotent
    ):
        status = ToolCallStatus.OUTCOME_UNKNOWN
        _outcome_unknown_review(loop, ledger, execution.error or "timed out")
    else:
        status = ToolCallStatus.FAILED
        state.consecutive_failures += 1
        loop.observe(
            Observation(
                ledger.call_id,
                ledger.tool,
                "error",
                {"message": execution.error or "failed"},
                execution.error_class,
            )
        )

    outcome = {
        "status": status,
        "result": result,
        "error_class": execution.error_class,
        "error_message": (execution.error or "")[:2000] or None,
        "duration_ms": execution.duration_ms,
        "finished_at": utcnow(),
    }
    mark = _mark_applied(review_id)
    work: Work | None = mark if review_id is not None else None
    if ledger.written:

        def save(connection: sa.Connection) -> None:
            attempts = len(execution.attempts)
            connection.execute(
                _LEDGER_FINISH,
                {"key": ledger.idempotency_key, "added_attempts": attempts, **outcome},
            )
            mark(connection)

        work = save
    else:  # a read: its ledger row is written once, now, with its outcome
        outcome["attempts"] = len(execution.attempts)
        loop.run.insert(LEDGER, _ledger_row(loop, ledger, **outcome))
    if review_id is None and status is not ToolCallStatus.OUTCOME_UNKNOWN and spec.repeatable:
        # A read, or a write the tool dedupes by its idempotency key: if a crash loses this
        # record, the recovered run simply makes the call again with the same key.
        loop.run.defer(work)
    else:
        loop.run.commit(work)


def _ledger_row(loop: _Loop, ledger: LedgerEntry, **columns: Any) -> dict[str, Any]:
    """A complete ledger row, in flight unless ``columns`` say otherwise (every column is
    present, so the rows of one commit batch into one ``executemany``)."""
    spec = loop.bundle.tool_specs[ledger.tool]
    row: dict[str, Any] = {
        "run_id": loop.state.run_id,
        "step_id": None,
        "review_id": ledger.review_id,
        "call_id": ledger.call_id,
        "tool": ledger.tool,
        "idempotency_key": ledger.idempotency_key,
        "args": ledger.args,
        "args_hash": args_hash(ledger.args),
        "side_effect": spec.side_effect,
        "idempotent": spec.idempotent,
        "status": ToolCallStatus.IN_FLIGHT,
        "attempts": 0,
        "result": None,
        "error_class": None,
        "error_message": None,
        "created_at": utcnow(),
        "finished_at": None,
        "duration_ms": None,
    }
    row.update(columns)
    return row


def _outcome_unknown_review(loop: _Loop, ledger: LedgerEntry, why: str) -> None:
    """Queue the review that asks a person whether the call took effect."""
    loop.run.step(
        StepKind.EXECUTE_TOOL,
        ledger.tool,
        StepStatus.ERROR,
        call_id=ledger.call_id,
        error_class=ErrorClass.OUTCOME_UNKNOWN,
        output={"error": f"outcome unknown: {why}"},
    )
    review = loop.new_review(
        kind=ReviewKind.OUTCOME_UNKNOWN,
        status=ReviewStatus.PENDING,
        call_id=ledger.call_id,
        tool=ledger.tool,
        args=ledger.args,
        rule_id="outcome-unknown",
        reason=f"{ledger.tool} is not idempotent and its outcome is unknown ({why}). Check the "
        "system of record: approve if it took effect, reject if it did not.",
        sla_minutes=60,
        risk=_risk(loop, ledger.tool, ledger.args),
    )
    loop.run.insert(REVIEWS, review)


def _mark_applied(review_id: int | None) -> Work:
    def mark(connection: sa.Connection) -> None:
        if review_id is not None:
            connection.execute(_REVIEW_APPLIED, {"review_id": review_id, "applied_at": utcnow()})

    return mark


def recover_in_flight(loop: _Loop) -> RunStatus | None:
    """Ledger rows a crashed worker left in flight: retry idempotent ones, ask about the rest."""
    with read_session(loop.p.engine) as session:
        rows = session.exec(
            select(ToolCall)
            .where(col(ToolCall.run_id) == loop.state.run_id)
            .where(col(ToolCall.status) == ToolCallStatus.IN_FLIGHT)
            .order_by(col(ToolCall.id))
        ).all()
    if not rows:
        return None
    asked = False
    for row in rows:
        ledger = LedgerEntry.stored(row)
        tool = loop.bundle.tools.get(ledger.tool)
        if tool is not None and (tool.spec.idempotent or not tool.spec.has_side_effects):
            execution = execute(
                tool,
                ledger.args,
                run_id=loop.state.run_id,
                idempotency_key=ledger.idempotency_key,
                timeout_s=loop.bundle.spec.budgets.call_timeout_s,
                retries=loop.bundle.spec.retries,
                engine=loop.p.engine,
                inline=loop.p.inline_tools,
            )
            finish_call(loop, ledger, execution)
            continue
        _outcome_unknown_review(loop, ledger, "the worker stopped while it was running")

        def mark_unknown(connection: sa.Connection, ledger: LedgerEntry = ledger) -> None:
            connection.execute(
                _LEDGER_SET,
                {
                    "key": ledger.idempotency_key,
                    "status": ToolCallStatus.OUTCOME_UNKNOWN,
                    "error_class": ErrorClass.OUTCOME_UNKNOWN,
                    "finished_at": utcnow(),
                },
            )
            _mark_applied(ledger.review_id)(connection)

        loop.run.commit(mark_unknown)
        asked = True
    return loop.park() if asked else None


def apply_decisions(loop: _Loop) -> RunStatus | None:
    """Act on reviews people (or the SLA clock) decided since the run parked."""
    with read_session(loop.p.engine) as session:
        reviews = session.exec(
            select(Review)
            .where(col(Review.run_id) == loop.state.run_id)
            .where(col(Review.applied_at).is_(None))
            .where(col(Review.status).not_in([ReviewStatus.PENDING, ReviewStatus.BLOCKED]))
            .order_by(col(Review.id))
        ).all()
        decisions = {
            r.id: session.exec(
                select(ReviewDecision)
                .where(col(ReviewDecision.review_id) == r.id)
                .order_by(col(ReviewDecision.id).desc())
                .limit(1)
            ).first()
            for r in reviews
        }
    for review in reviews:
        decision = decisions.get(review.id)
        outcome = _apply_one(loop, review, decision)
        if outcome is not None:
            return outcome
    return None


def _apply_one(loop: _Loop, review: Review, decision: ReviewDecision | None) -> RunStatus | None:
    approved = review.status in _APPROVED
    reason = decision.reason if decision else ""
    edited_args = decision.args if decision and decision.args is not None else None
    waited = (
        (review.decided_at - review.created_at).total_seconds() * 1000 if review.decided_at else 0.0
    )
    loop.run.step(
        StepKind.HUMAN_APPROVAL,
        f"{review.kind.value} review",
        StepStatus.OK if approved else StepStatus.DENIED,
        call_id=review.call_id,
        error_class=None
        if approved
        else (
            ErrorClass.REVIEW_EXPIRED
            if review.status is ReviewStatus.EXPIRED
            else ErrorClass.HUMAN_REJECTED
        ),
        input={"review_id": review.id, "tool": review.tool, "rule_id": review.rule_id},
        output={
            "decision": review.status.value,
            "decided_by": review.decided_by,
            "reason": reason,
            "edited_args": redact(edited_args),
        },
        attributes={"review_id": review.id, "rule_id": review.rule_id, "tier": review.tier},
        started_at=review.created_at,
        ended_at=review.decided_at or utcnow(),
        duration_ms=waited,
    )
    if review.kind is ReviewKind.OUTPUT_INVALID:
        loop.run.commit(_mark_applied(review.id))
        if approved:
            output = edited_args if edited_args is not None else (review.args or {})
            return loop.finish(RunStatus.SUCCEEDED, output=dict(output))
        expired = review.status is ReviewStatus.EXPIRED
        return loop.finish(
            RunStatus.FAILED,
            ErrorClass.REVIEW_EXPIRED if expired else ErrorClass.HUMAN_REJECTED,
            f"output review {review.status.value}: {reason}".strip(": "),
        )
    if review.kind is ReviewKind.OUTCOME_UNKNOWN:
        _apply_verification(loop, review, approved, reason)
        return None
    if approved and review.tool is not None and review.call_id is not None:
        args = dict(edited_args if edited_args is not None else (review.args or {}))
        admit_and_execute(loop, review.call_id, review.tool, args, review_id=review.id)
        return None
    loop.state.rejection_count += 1
    expired = review.status is ReviewStatus.EXPIRED
    who = review.decided_by or "system"
    loop.observe(
        Observation(
            review.call_id or "",
            review.tool or "",
            "expired" if expired else "rejected",
            {
                "reason": reason,
                "decided_by": who,
                "message": (
                    "the review expired without a decision"
                    if expired
                    else f"rejected by {who}: {reason}"
                ),
            },
            ErrorClass.REVIEW_EXPIRED if expired else ErrorClass.HUMAN_REJECTED,
        )
    )
    loop.run.commit(_mark_applied(review.id))
    return None


def _apply_verification(loop: _Loop, review: Review, happened: bool, reason: str) -> None:
    who = review.decided_by or "system"

    def save(connection: sa.Connection) -> None:
        connection.execute(
            sa.update(LEDGER)
            .where(LEDGER.c.run_id == loop.state.run_id)
            .where(LEDGER.c.call_id == review.call_id)
            .values(
                status=ToolCallStatus.SUCCEEDED if happened else ToolCallStatus.FAILED,
                result={"verified_by": who, "note": reason} if happened else None,
            )
        )
        _mark_applied(review.id)(connection)

    if happened:
        loop.state.consecutive_failures = 0
        loop.state.count_success(review.tool or "", review.args)
        loop.observe(
            Observation(
                review.call_id or "",
                review.tool or "",
                "ok",
                {
                    "verified_by": who,
                    "note": reason,
                    "message": f"{who} confirmed the call took effect",
                },
            )
        )
    else:
        loop.observe(
            Observation(
                review.call_id or "",
                review.tool or "",
                "error",
                {"message": f"{who} found the call did not take effect: {reason}"},
                ErrorClass.OUTCOME_UNKNOWN,
            )
        )
    loop.run.commit(save)
