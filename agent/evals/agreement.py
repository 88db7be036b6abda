"""Reviewer agreement: how often a version, given the inputs of past production tasks, does what
the people who reviewed those tasks decided.

Every production run in which a person decided one of the agent's calls becomes a case of one
managed suite, ``reviewer-agreement``. The suite is stored like any other, so its cases can be read
and each evaluation's runs open in the run view. A case holds the task's input, the people's
answers (replayed by the scripted reviewer through the real review service), and expectations
that say what agreeing means:

- an **approved** or **overridden** call: the version proposes the same call with the same
  arguments, and it is carried out (allowed, or escalated and approved again);
- a **rejected** call: the version never carries that tool out in the task without a person. It
  may leave it unproposed, escalate it or have the gate refuse it;
- an **edited** call: the version proposes the tool, and the arguments the person replaced are
  never allowed without a person.

A version's score is the pass rate of its latest evaluation against the suite: the share of past
reviewed tasks, each with every decision in it, that the version agrees with. The cases run in
the sandbox of the agent's own suites (their fixture and HTTP bindings), never against
production. This is useful only when that fixture holds the records the past tasks name, as the
demo's does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from sqlmodel import Session, col, select

from agent.actors import READ_ROLES, Actor, require
from agent.errors import InvalidInput
from agent.evals.service import EvaluationInfo, run_evaluation
from agent.evals.suites import EVAL_ROLES, SuiteInfo, agent_named, create_suite
from agent.platform import Platform
from storage.engine import read_session
from storage.enums import DecisionKind, EvalRunStatus, ReviewKind, ReviewStatus
from storage.models import (
    Agent,
    AgentVersion,
    EvalRun,
    EvalSuite,
    Review,
    ReviewDecision,
    Run,
    Task,
)

AGREEMENT_SUITE = "reviewer-agreement"
DEFAULT_LAST = 50
MAX_LAST = 500
# A number a person approved is the same number give or take this (money to the cent).
NUMERIC_TOLERANCE = 0.005
_DECIDED = (
    ReviewStatus.APPROVED,
    ReviewStatus.EDITED,
    ReviewStatus.REJECTED,
    ReviewStatus.OVERRIDDEN,
)
_PEOPLE_DECISIONS = (
    DecisionKind.APPROVE,
    DecisionKind.EDIT,
    DecisionKind.REJECT,
    DecisionKind.OVERRIDE,
)


@dataclass(frozen=True)
class PastDecision:
    """A person's final decision on one proposed call of a production run."""

    run_id: int
    review_id: int
    tool: str
    args: Mapping[str, Any]
    decision: DecisionKind
    edited_args: Mapping[str, Any] | None
    reason: str
    actor: str
    decided_at: datetime


@dataclass(frozen=True)
class AgreementScore:
    """A version's latest agreement measurement."""

    version: int
    score: float | None
    agreed: int
    cases: int
    eval_run_id: int
    status: EvalRunStatus
    measured_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "status": self.status.value,
            "measured_at": self.measured_at.isoformat(),
        }


def past_decisions(
    session: Session, agent: Agent, *, last: int = DEFAULT_LAST
) -> dict[int, list[PastDecision]]:
    """People's decisions on the agent's production calls, grouped by run: the ``last`` most
    recently decided runs, each run's decisions in the order they were raised."""
    rows = session.exec(
        select(Review, ReviewDecision)
        .join(Run, col(Run.id) == col(Review.run_id))
        .join(ReviewDecision, col(ReviewDecision.review_id) == col(Review.id))
        .where(col(Review.agent_id) == agent.id)
        .where(col(Run.eval_run_id).is_(None))
        .where(col(Review.kind).in_((ReviewKind.ESCALATION, ReviewKind.BLOCK)))
        .where(col(Review.status).in_(_DECIDED))
        .where(col(Review.tool).is_not(None))
        .where(col(ReviewDecision.decision).in_(_PEOPLE_DECISIONS))
        .order_by(col(Review.decided_at).desc(), col(ReviewDecision.id).desc())
    ).all()
    by_run: dict[int, dict[int, PastDecision]] = {}
    for review, decision in rows:
        assert review.id is not None
        if review.run_id not in by_run:
            if len(by_run) == last:
                continue
            by_run[review.run_id] = {}
        # Rows come newest decision first: the first seen for a review is its final one.
        by_run[review.run_id].setdefault(
            review.id,
            PastDecision(
                run_id=review.run_id,
                review_id=review.id,
                tool=str(review.tool),
                args=dict(review.args or {}),
                decision=decision.decision,
                edited_args=dict(decision.args) if decision.args is not None else None,
                reason=decision.reason,
                actor=decision.actor,
                decided_at=decision.created_at,
            ),
        )
    return {run: sorted(d.values(), key=lambda p: p.review_id) for run, d in by_run.items()}


def agreement_case(
    run_id: int, task_input: Mapping[str, Any], decisions: Sequence[PastDecision]
) -> dict[str, Any]:
    """The case that holds a version to the people's decisions in one past run."""
    carried_out: list[dict[str, Any]] = []
    proposed: list[dict[str, Any]] = []
    not_allowed: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    for past in decisions:
        if past.decision in (DecisionKind.APPROVE, DecisionKind.OVERRIDE):
            proposed.append({"tool": past.tool, "args": _matchers(past.args)})
            answer: dict[str, Any] = {"tool": past.tool, "decision": past.decision.value}
            if past.decision is DecisionKind.OVERRIDE:
                answer["as"] = "manager"
            else:
                # Approved: the gate lets it through, by itself or with a person's approval.
                carried_out.append({"tool": past.tool, "decision": ["allow", "escalate"]})
        elif past.decision is DecisionKind.REJECT:
            not_allowed.append({"tool": past.tool})
            answer = {"tool": past.tool, "decision": "reject"}
        else:
            proposed.append({"tool": past.tool})
            not_allowed.append({"tool": past.tool, "args": _matchers(past.args)})
            answer = {"tool": past.tool, "decision": "edit", "args": dict(past.edited_args or {})}
        if past.reason:
            answer["reason"] = past.reason[:500]
        answers.append(answer)
    expect: dict[str, Any] = {}
    if proposed:
        expect["trajectory"] = {"match": "subset", "calls": proposed}
    governance: dict[str, Any] = {}
    if carried_out:
        governance["decisions"] = carried_out
    if not_allowed:
        governance["not_allowed"] = not_allowed
    if governance:
        expect["governance"] = governance
    said = "; ".join(f"{p.actor} {p.decision.value}d {p.tool}" for p in decisions)
    return {
        "name": f"run-{run_id}",
        "description": f"Production run {run_id}: {said}."[:2000],
        "tags": ["reviewer-agreement"],
        "input": dict(task_input),
        "reviewer": answers,
        "expect": expect,
    }


def refresh_agreement_suite(
    platform: Platform, actor: Actor, agent_name: str, *, last: int = DEFAULT_LAST
) -> SuiteInfo:
    """Store the agent's ``reviewer-agreement`` suite from its ``last`` reviewed runs.

    Raises:
        Forbidden: the actor is not an engineer.
        NotFound: no such agent.
        InvalidInput: ``last`` is out of range, nobody has decided any of the agent's calls yet,
            or none of the agent's suites names a fixture to run the cases against.
    """
    require(actor, EVAL_ROLES, f"measure reviewer agreement of {agent_name!r}")
    if not 1 <= last <= MAX_LAST:
        raise InvalidInput(f"last is 1 to {MAX_LAST} reviewed runs, not {last}.")
    with read_session(platform.engine) as session:
        agent = agent_named(session, agent_name)
        sandbox = _sandbox_of(session, agent)
        decided = past_decisions(session, agent, last=last)
        if not decided:
            raise InvalidInput(
                f"nobody has decided a call of {agent_name!r} yet; reviewer agreement needs "
                "past decisions to compare with."
            )
        inputs = dict(
            session.exec(
                select(Run.id, Task.input)
                .join(Task, col(Task.id) == col(Run.task_id))
                .where(col(Run.id).in_(list(decided)))
            ).all()
        )
    document: dict[str, Any] = {
        "description": (
            f"People's decisions on the last {len(decided)} reviewed runs of {agent_name}, as "
            "cases: a version agrees when it does what they decided."
        ),
        "required": False,
        "threshold": 0.0,
        **sandbox,
        "cases": [
            agreement_case(run_id, inputs[run_id], decisions)
            for run_id, decisions in sorted(decided.items())
        ],
    }
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return create_suite(platform, actor, agent_name, AGREEMENT_SUITE, text)


def measure_agreement(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    version: int | None = None,
    last: int = DEFAULT_LAST,
    concurrency: int = 2,
) -> EvaluationInfo:
    """Refresh the agreement suite and evaluate one version (the active one by default) on it;
    the evaluation's pass rate is the version's agreement.

    Raises:
        Forbidden, NotFound, InvalidInput: as ``refresh_agreement_suite`` and ``run_evaluation``.
    """
    refresh_agreement_suite(platform, actor, agent_name, last=last)
    (info,) = run_evaluation(
        platform,
        actor,
        agent_name,
        version=version,
        suite=AGREEMENT_SUITE,
        concurrency=concurrency,
        trigger="agreement",
    )
    return info


def agreement_by_version(
    platform: Platform, actor: Actor, agent_name: str
) -> dict[int, AgreementScore]:
    """Each version's latest finished agreement measurement, by version number."""
    require(actor, READ_ROLES, f"read the reviewer agreement of {agent_name!r}")
    with read_session(platform.engine) as session:
        agent = agent_named(session, agent_name)
        rows = session.exec(
            select(EvalRun, AgentVersion.number)
            .join(EvalSuite, col(EvalSuite.id) == col(EvalRun.suite_id))
            .join(AgentVersion, col(AgentVersion.id) == col(EvalRun.version_id))
            .where(col(EvalSuite.agent_id) == agent.id)
            .where(col(EvalSuite.name) == AGREEMENT_SUITE)
            .where(col(EvalRun.status).in_((EvalRunStatus.PASSED, EvalRunStatus.FAILED)))
            .order_by(col(EvalRun.id).desc())
        ).all()
    scores: dict[int, AgreementScore] = {}
    for row, number in rows:
        if number in scores:
            continue
        cases = row.passed + row.failed
        assert row.id is not None
        scores[number] = AgreementScore(
            version=number,
            score=row.passed / cases if cases else None,
            agreed=row.passed,
            cases=cases,
            eval_run_id=row.id,
            status=row.status,
            measured_at=row.finished_at or row.created_at,
        )
    return scores


def _matchers(args: Mapping[str, Any]) -> dict[str, Any]:
    """Each argument as the person saw it; numbers to within a cent."""
    matchers: dict[str, Any] = {}
    for name, value in args.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            matchers[name] = {"equals": value, "tolerance": NUMERIC_TOLERANCE}
        else:
            matchers[name] = {"equals": value}
    return matchers


def _sandbox_of(session: Session, agent: Agent) -> dict[str, Any]:
    """The fixture and HTTP bindings of the agent's suites, required ones first."""
    suites = session.exec(
        select(EvalSuite)
        .where(col(EvalSuite.agent_id) == agent.id)
        .where(col(EvalSuite.name) != AGREEMENT_SUITE)
        .order_by(col(EvalSuite.required).desc(), col(EvalSuite.name))
    ).all()
    for suite in suites:
        if suite.document.get("fixtures"):
            found = {"fixtures": suite.document["fixtures"]}
            if suite.document.get("sandbox"):
                found["sandbox"] = suite.document["sandbox"]
            return found
    raise InvalidInput(
        f"none of {agent.name!r}'s suites names a fixture; reviewer agreement runs past tasks "
        "against a suite's sandbox, never against production, so store a suite with "
        "'fixtures' first."
    )
