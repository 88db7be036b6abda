"""What a decision would let through, checked before it is recorded: a dry run of the one gate.

An approval, an edit or an override is tried on the same mediator a run uses, with the run's
counters and tally as they are now, fresh facts, and the authorization the decision would add.
An edit the gate would refuse is refused with the reason; an approval the policy would now deny
is recorded, with a note saying it will not execute unless a permitted role overrides the deny
(the worker decides the call again when it executes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from agent.binding import args_hash
from agent.calls import Effect, ProposedCall
from agent.errors import InvalidInput
from agent.inputs import json_object
from agent.mediation.authorization import Grant, authorization_for, grant_of
from agent.mediation.decision import Decision
from agent.mediation.variables import CallTally, RunFigures
from agent.platform import Platform
from storage.enums import DecisionKind, ReviewStatus, ToolCallStatus
from storage.models import Review, ReviewDecision, Run, Task, ToolCall


def parse_edited_args(args: Any) -> dict[str, Any]:
    """Edited arguments as a dict, from a mapping or from JSON text, checked like every JSON
    document a person gives Steward (size, depth, finite numbers, storable text).

    Raises:
        InvalidInput: the text is not JSON, not a JSON object, or holds what JSON or the
            database cannot carry (the message says where).
    """
    return json_object(args, what="the edit")


def checked_output(
    platform: Platform, session: Session, review: Review, args: Any
) -> dict[str, Any]:
    """A corrected final answer, checked against the version's output contract.

    Raises:
        InvalidInput: it is not a JSON object, or still breaks the contract.
    """
    answer = parse_edited_args(args)
    version = platform.versions.get(review.version_id)
    problems = version.output_problems(answer, _task(session, review))
    if problems:
        raise InvalidInput(
            "the edited output still breaks the contract: " + "; ".join(problems[:3]) + "."
        )
    return answer


def dry_run(
    platform: Platform,
    session: Session,
    review: Review,
    args: Mapping[str, Any],
    *,
    kind: DecisionKind,
    actor: str,
) -> Decision:
    """How the gate would decide the review's call with ``args`` if ``kind`` were taken now.

    Raises:
        NotFound: the review's version no longer exists.
    """
    version = platform.versions.get(review.version_id)
    run = session.get(Run, review.run_id)
    assert run is not None
    assert run.id is not None
    executed = session.exec(
        select(ToolCall)
        .where(col(ToolCall.run_id) == run.id)
        .where(col(ToolCall.status) == ToolCallStatus.SUCCEEDED)
    ).all()
    call = ProposedCall(review.call_id or "", review.tool or "", dict(args))
    bound = args_hash(dict(args))
    grants = _grants(session, review)
    if review.rule_id is not None:
        grants.append(
            Grant(call.call_id, review.rule_id, kind is DecisionKind.OVERRIDE, bound, actor)
        )
    context = version.call_context(
        call,
        engine=platform.engine,
        registry=platform.registry,
        task=_task(session, review),
        figures=RunFigures(
            run.id,
            steps=run.step_count,
            turns=run.planner_turns,
            denials=run.denial_count,
            rejections=run.rejection_count,
        ),
        tally=CallTally.of((row.tool, row.args) for row in executed),
        agent_id=run.agent_id,
        authorization=authorization_for(call.call_id, bound, grants, review_id=review.id),
        records_engine=platform.records_engine,
        namespace=platform.sandbox.namespace if platform.sandbox is not None else None,
    )
    return version.mediator.authorize(call, context).decision


def refusal(review: Review, decision: Decision) -> str | None:
    """Why a decision on ``review`` would not let its call through, or None if it would."""
    if decision.effect is Effect.ALLOW:
        return None
    if decision.stage == "arguments":
        return f"the edited arguments do not fit {review.tool}: {decision.reason}."
    if decision.effect is Effect.DENY:
        who = ", ".join(decision.override_roles)
        lift = f"only an override by {who} can lift it" if who else "nobody may override it"
        return f"the call is denied by rule {decision.rule_id}: {decision.reason} ({lift})."
    return f"the call would be escalated again by rule {decision.rule_id}: {decision.reason}."


def _task(session: Session, review: Review) -> dict[str, Any]:
    run = session.get(Run, review.run_id)
    task = session.get(Task, run.task_id) if run is not None else None
    return dict(task.input) if task is not None else {}


def _grants(session: Session, review: Review) -> list[Grant]:
    """Earlier decisions in favour of the same call (an approval before it became a block)."""
    earlier = session.exec(
        select(Review)
        .where(col(Review.run_id) == review.run_id)
        .where(col(Review.call_id) == review.call_id)
        .where(col(Review.id) != review.id)
        .where(col(Review.status).in_(ReviewStatus.authorizing_statuses()))
    ).all()
    grants = []
    for item in earlier:
        last = session.exec(
            select(ReviewDecision)
            .where(col(ReviewDecision.review_id) == item.id)
            .order_by(col(ReviewDecision.id).desc())
            .limit(1)
        ).first()
        edited = last.args if last is not None and last.args is not None else None
        grant = grant_of(item, edited if edited is not None else (item.args or {}))
        if grant is not None:
            grants.append(grant)
    return grants
