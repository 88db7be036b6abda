"""An evaluation suite's cases: read back for people, and made from production runs.

A production run becomes a case the way a person's decision becomes a test: the task's input,
and what the person decided on each escalated or blocked call, so that the scripted reviewer
answers the same way and the case checks that governance still asks. A run nobody reviewed
becomes a case on its outcome and the tools it executed. The new case is appended to the
suite's YAML source (the engineer's comments and layout kept) and stored through
``create_suite``, so it is validated, hashed and audited exactly as ``steward evals create``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from sqlmodel import Session, col, select
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from agent.actors import READ_ROLES, Actor, require
from agent.errors import InvalidInput, NotFound
from agent.evals.suites import EVAL_ROLES, SuiteInfo, create_suite, list_suites, suite_row
from agent.platform import Platform
from storage.engine import read_session
from storage.enums import DecisionKind, ReviewKind, StepKind, StepStatus
from storage.models import Agent, EvalSuite, Review, ReviewDecision, Run, Step, Task

DEFAULT_TAGS = ("normal",)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_GOVERNED = (ReviewKind.ESCALATION, ReviewKind.BLOCK)
# The gate's decision that put a call in front of a person, by the kind of review it raised.
_GATE_DECISION = {ReviewKind.ESCALATION: "escalate", ReviewKind.BLOCK: "deny"}
_ANSWER = {
    DecisionKind.APPROVE: "approve",
    DecisionKind.EDIT: "edit",
    DecisionKind.REJECT: "reject",
    DecisionKind.OVERRIDE: "override",
    DecisionKind.EXPIRE: "expire",
}
# Two numbers this close are the same amount of money.
AMOUNT_TOLERANCE = 0.01


@dataclass(frozen=True)
class CaseInfo:
    """One live case of a suite, as people read it."""

    name: str
    tags: tuple[str, ...]
    repeat: int
    input: dict[str, Any]
    expects: tuple[str, ...]
    reviewer: int

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "tags": list(self.tags), "expects": list(self.expects)}


@dataclass(frozen=True)
class SuiteDetail:
    """A suite with its live cases, in the source's order, and its YAML source."""

    suite: SuiteInfo
    cases: tuple[CaseInfo, ...]
    source_yaml: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite.as_dict(),
            "cases": [c.as_dict() for c in self.cases],
            "source_yaml": self.source_yaml,
        }


@dataclass(frozen=True)
class AddedCase:
    """A case made from a production run and stored in a suite."""

    run_id: int
    case: dict[str, Any]
    suite: SuiteInfo

    @property
    def name(self) -> str:
        return str(self.case["name"])

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "case": self.case, "suite": self.suite.as_dict()}


def show_suite(platform: Platform, actor: Actor, agent_name: str, name: str) -> SuiteDetail:
    """One suite of an agent with its live cases.

    Raises:
        NotFound: no such agent or suite.
    """
    require(actor, READ_ROLES, f"read the evaluation suites of {agent_name!r}")
    info = next((s for s in list_suites(platform, actor, agent_name) if s.name == name), None)
    if info is None:
        raise NotFound(f"agent {agent_name!r} has no evaluation suite named {name!r}.")
    with read_session(platform.engine) as session:
        suite = session.get(EvalSuite, info.id)
        assert suite is not None
        source = suite.source_yaml
        document = suite.document
    cases = tuple(
        CaseInfo(
            name=str(case["name"]),
            tags=tuple(case.get("tags", ())),
            repeat=int(case.get("repeat", 1)),
            input=dict(case["input"]),
            expects=tuple(case["expect"]),
            reviewer=len(case.get("reviewer", ())),
        )
        for case in document.get("cases", ())
    )
    return SuiteDetail(suite=info, cases=cases, source_yaml=source)


def case_from_run(
    platform: Platform,
    actor: Actor,
    run_id: int,
    *,
    name: str | None = None,
    tags: Sequence[str] = DEFAULT_TAGS,
) -> dict[str, Any]:
    """The case document a production run makes (the shape of one item of a suite's
    ``cases``).

    Each escalated or blocked call a person decided gives a reviewer answer (the same decision,
    reason and, for an edit, arguments) and a governance expectation (the gate escalates, or
    denies, the call by the same rule); an edit also expects the agent to propose the arguments
    the person corrected. A run nobody reviewed gives its final status and resolution and the
    tools it executed, in order.

    Args:
        run_id: a production run of the agent.
        name: the case's name (default ``run-<id>``).
        tags: the case's tags (default ``normal``).

    Raises:
        Forbidden: the actor is not an engineer.
        NotFound: no such run.
        InvalidInput: the run is an evaluation's, is still going with nothing decided, or the
            name or a tag is not one.
    """
    require(actor, EVAL_ROLES, f"make an evaluation case from run {run_id}")
    name = _checked_name(name if name is not None else f"run-{run_id}", "case name")
    tags = [_checked_name(tag, "tag") for tag in dict.fromkeys(tags)]
    with read_session(platform.engine) as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFound(f"run {run_id} does not exist.")
        if run.eval_run_id is not None:
            raise InvalidInput(
                f"run {run_id} belongs to evaluation {run.eval_run_id}; cases come from "
                "production runs only."
            )
        task = session.get(Task, run.task_id)
        agent = session.get(Agent, run.agent_id)
        assert task is not None
        assert agent is not None
        decided = _decided_reviews(session, run_id)
        executed = [
            step.name
            for step in session.exec(
                select(Step)
                .where(col(Step.run_id) == run_id)
                .where(col(Step.kind) == StepKind.EXECUTE_TOOL)
                .where(col(Step.status) == StepStatus.OK)
                .order_by(col(Step.seq))
            ).all()
        ]
    if not decided and not run.status.is_terminal:
        raise InvalidInput(
            f"run {run_id} is {run.status.value} and nobody has decided a review of it yet; "
            "add it once it has finished or a person has decided."
        )
    case: dict[str, Any] = {
        "name": name,
        "description": f"From production run {run_id} of {agent.name}.",
        "tags": tags,
        "input": dict(task.input),
    }
    if decided:
        case.update(_from_reviews(run, decided))
    else:
        case["expect"] = _from_outcome(run, executed)
    return case


def add_case(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    suite: str,
    run_id: int,
    *,
    name: str | None = None,
    tags: Sequence[str] = DEFAULT_TAGS,
) -> AddedCase:
    """Make a case from production run ``run_id`` and append it to the agent's suite.

    The suite's YAML source gets the case at the end of its ``cases`` and is stored again
    through ``create_suite`` (validated, a new content hash, audited as an update).

    Raises:
        Forbidden: the actor is not an engineer.
        NotFound: no such agent, suite or run.
        InvalidInput: the run is an evaluation's or another agent's, is not finished, the suite
            already has a case of that name, a name or tag is not one, or the suite changed
            between reading it and storing it (nothing is stored).
        SuiteSpecError: the suite with the new case does not validate.
    """
    require(actor, EVAL_ROLES, f"add a case to the evaluation suite {suite!r} of {agent_name!r}")
    case = case_from_run(platform, actor, run_id, name=name, tags=tags)
    with read_session(platform.engine) as session:
        agent, row = suite_row(session, agent_name, suite)
        run = session.get(Run, run_id)
        assert run is not None
        if run.agent_id != agent.id:
            owner = session.get(Agent, run.agent_id)
            raise InvalidInput(
                f"run {run_id} is a run of agent {owner.name if owner else '?'!r}, not of "
                f"{agent_name!r}; add it to a suite of its own agent."
            )
        source = row.source_yaml
        read_hash = row.content_hash
        names = {str(c["name"]) for c in row.document.get("cases", ())}
    if case["name"] in names:
        raise InvalidInput(
            f"suite {suite!r} already has a case named {case['name']!r}; give this one "
            "another name."
        )
    stored = create_suite(
        platform, actor, agent_name, suite, append_case(source, case), replaces=read_hash
    )
    return AddedCase(run_id=run_id, case=case, suite=stored)


def append_case(source: str, case: Mapping[str, Any]) -> str:
    """``source`` (a suite's YAML) with ``case`` as the last item of its ``cases``.

    The case is written in block style at the indentation of the existing items, right after
    the last one, so the rest of the file (comments, order, layout) stays as the engineer wrote
    it. A source laid out otherwise (a flow-style list) is written out again whole.
    """
    rendered = yaml.safe_dump(
        [dict(case)], sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    spliced = _splice(source, rendered)
    if spliced is not None:
        check = yaml.safe_load(spliced)
        previous = yaml.safe_load(source)
        if check == {**previous, "cases": [*previous["cases"], dict(case)]}:
            return spliced
    document = yaml.safe_load(source)
    document["cases"] = [*document["cases"], dict(case)]
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def _splice(source: str, rendered: str) -> str | None:
    root = yaml.compose(source, Loader=yaml.SafeLoader)
    if not isinstance(root, MappingNode):
        return None
    cases = next(
        (
            value
            for key, value in root.value
            if isinstance(key, ScalarNode) and key.value == "cases"
        ),
        None,
    )
    if not isinstance(cases, SequenceNode) or cases.flow_style or not cases.value:
        return None
    first = cases.value[0].start_mark
    line = source.splitlines()[first.line]
    dash = line.rfind("-", 0, first.column)
    if dash < 0 or line[:dash].strip():
        return None
    end = cases.value[-1].end_mark
    if end.column == 0:
        at = end.index
    else:
        newline = source.find("\n", end.index)
        at = len(source) if newline < 0 else newline + 1
    before = source[:at] if source[:at].endswith("\n") else source[:at] + "\n"
    block = "".join(" " * dash + text if text else text for text in rendered.splitlines(True))
    return before + block + source[at:]


def _checked_name(text: str, what: str) -> str:
    value = text.strip()
    if not _NAME.fullmatch(value):
        raise InvalidInput(
            f"{value[:40]!r} is not a {what}: use 1 to 128 letters, digits, '.', '-' and '_'."
        )
    return value


def _decided_reviews(session: Session, run_id: int) -> list[tuple[Review, ReviewDecision]]:
    """The run's escalations and blocks a person (or the SLA clock) decided, in order, each
    with its decision."""
    rows = session.exec(
        select(Review, ReviewDecision)
        .join(ReviewDecision, col(ReviewDecision.review_id) == col(Review.id))
        .where(col(Review.run_id) == run_id)
        .where(col(Review.kind).in_(_GOVERNED))
        .order_by(col(Review.id), col(ReviewDecision.id))
    ).all()
    latest: dict[int, tuple[Review, ReviewDecision]] = {}
    for review, decision in rows:
        latest[review.id or 0] = (review, decision)
    return list(latest.values())


def _from_reviews(run: Run, decided: Sequence[tuple[Review, ReviewDecision]]) -> dict[str, Any]:
    reviewer: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    corrected: list[dict[str, Any]] = []
    for review, decision in decided:
        where = {"tool": review.tool, "rule": review.rule_id}
        where = {k: v for k, v in where.items() if v}
        answer: dict[str, Any] = {**where, "decision": _ANSWER[decision.decision]}
        if decision.decision is not DecisionKind.EXPIRE and decision.reason:
            answer["reason"] = decision.reason
        if decision.decision is DecisionKind.OVERRIDE:
            answer["as"] = "operator" if "operator" in review.override_roles else "manager"
        if decision.decision is DecisionKind.EDIT and isinstance(decision.args, dict):
            answer["args"] = dict(decision.args)
            if review.tool:
                changed = _changed(review.args, decision.args)
                corrected.append({"tool": review.tool, "args": changed})
        reviewer.append(answer)
        if review.tool:
            decisions.append({**where, "decision": _GATE_DECISION[review.kind]})
    expect: dict[str, Any] = {}
    if run.status.is_terminal:
        expect["status"] = run.status.value
    if corrected:
        expect["trajectory"] = {"match": "subset", "calls": corrected}
    if decisions:
        expect["governance"] = {"decisions": decisions}
    if not expect:
        raise InvalidInput(
            f"run {run.id} has not finished and its decided reviews name no tool; there is "
            "nothing to expect of it yet."
        )
    return {"reviewer": reviewer, "expect": expect}


def _changed(proposed: Mapping[str, Any] | None, edited: Mapping[str, Any]) -> dict[str, Any]:
    """Matchers for the arguments the person changed (all of them when none visibly did);
    amounts match within a cent."""
    before = dict(proposed or {})
    changed = {k: v for k, v in edited.items() if before.get(k) != v} or dict(edited)
    return {key: _matcher(value) for key, value in changed.items()}


def _matcher(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"equals": value, "tolerance": AMOUNT_TOLERANCE}
    # An object would read as a matcher; say that it is the value itself.
    return {"equals": value} if isinstance(value, dict) else value


def _from_outcome(run: Run, executed: Sequence[str]) -> dict[str, Any]:
    expect: dict[str, Any] = {"status": run.status.value}
    resolution = (run.output or {}).get("resolution")
    if isinstance(resolution, str):
        expect["resolution"] = resolution
    if executed:
        expect["trajectory"] = {
            "match": "in_order",
            "calls": [{"tool": tool} for tool in executed],
        }
    return expect
