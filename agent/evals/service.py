"""Evaluations as people run and read them: run a version against suites, list the runs, read
one run's results case by case, and compare two runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from agent.actors import READ_ROLES, Actor, require
from agent.errors import InvalidInput, NotFound
from agent.evals.runner import Evaluation, finish_evaluation
from agent.evals.spec import SuiteSpec
from agent.evals.suites import EVAL_ROLES, agent_named, live_cases, suite_row
from agent.platform import Platform
from agent.reads.paging import DEFAULT_LIMIT, Page, check_window
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import EvalRunStatus
from storage.models import Agent, AgentVersion, EvalCase, EvalResult, EvalRun, EvalSuite

MAX_REPEAT = 20
MAX_CONCURRENCY = 16
TRIGGERS = ("manual", "console", "cli", "schedule", "agreement")


@dataclass(frozen=True)
class EvaluationInfo:
    """One evaluation run, as people read it."""

    id: int
    agent: str
    suite: str
    suite_hash: str
    version: int
    version_hash: str
    status: EvalRunStatus
    passed: int
    failed: int
    repeat: int
    concurrency: int
    trigger: str
    summary: dict[str, Any]
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True)
class CaseResult:
    """One attempt of one case: whether it passed, and if not, why, in words."""

    case: str
    tags: tuple[str, ...]
    attempt: int
    passed: bool
    failures: tuple[str, ...]
    status: str
    run_id: int | None
    duration_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "tags": list(self.tags), "failures": list(self.failures)}


def run_evaluation(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    version: int | None = None,
    suite: str | None = None,
    repeat: int | None = None,
    concurrency: int = 1,
    trigger: str = "manual",
) -> tuple[EvaluationInfo, ...]:
    """Evaluate one version of an agent (its active one by default) against one of its suites,
    or all of them; each suite is one evaluation run.

    Raises:
        Forbidden: the actor is not an engineer (the scheduler acts as the system).
        NotFound: no such agent, version or suite, or the agent has no suites.
        InvalidInput: ``repeat`` or ``concurrency`` is out of range, or the agent has no
            active version to evaluate.
        VersionSpecError: the version cannot run with the installed tools.
    """
    if trigger != "schedule":
        require(actor, EVAL_ROLES, f"run an evaluation of {agent_name!r}")
    if repeat is not None and not 1 <= repeat <= MAX_REPEAT:
        raise InvalidInput(f"repeat is 1 to {MAX_REPEAT}, not {repeat}.")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidInput(f"concurrency is 1 to {MAX_CONCURRENCY}, not {concurrency}.")
    with read_session(platform.engine) as session:
        agent, version_row = _version(session, agent_name, version)
        suites = (
            [suite_row(session, agent_name, suite)[1]]
            if suite is not None
            else list(
                session.exec(
                    select(EvalSuite)
                    .where(col(EvalSuite.agent_id) == agent.id)
                    .order_by(col(EvalSuite.name))
                ).all()
            )
        )
        if not suites:
            raise NotFound(f"agent {agent_name!r} has no evaluation suites; store one first.")
        plans = [(s, live_cases(session, s.id or 0)) for s in suites]
    assert version_row.id is not None
    compiled = platform.versions.get(version_row.id)
    return tuple(
        _evaluate(
            platform,
            actor,
            agent_name,
            suite_row_,
            cases,
            version_row,
            compiled=compiled,
            repeat=repeat,
            concurrency=concurrency,
            trigger=trigger,
        )
        for suite_row_, cases in plans
    )


def _evaluate(  # noqa: PLR0917 - internal, called with the evaluation's parts in order
    platform: Platform,
    actor: Actor,
    agent_name: str,
    suite: EvalSuite,
    cases: Sequence[EvalCase],
    version: AgentVersion,
    *,
    compiled: Any,
    repeat: int | None,
    concurrency: int,
    trigger: str,
) -> EvaluationInfo:
    assert suite.id is not None
    assert version.id is not None
    with write_session(platform.engine) as session:
        row = EvalRun(
            suite_id=suite.id,
            version_id=version.id,
            version_hash=version.content_hash,
            suite_hash=suite.content_hash,
            repeat=repeat or 1,
            concurrency=concurrency,
            trigger=trigger,
            created_by=actor.name,
        )
        session.add(row)
        session.flush()
        append_event(
            session,
            actor=actor.name,
            action="evaluation.run",
            target_type="eval_run",
            target_id=row.id or 0,
            payload={
                "agent": agent_name,
                "suite": suite.name,
                "version": version.number,
                "version_hash": version.content_hash,
            },
        )
        session.refresh(row)
        session.expunge(row)
    spec = SuiteSpec.from_document(suite.document)
    evaluation = Evaluation(platform, row, compiled, spec, cases, submitted_by=actor.name)
    try:
        outcomes = evaluation.run()
    except Exception as exc:
        _fail(platform, row.id or 0, f"{type(exc).__name__}: {exc}")
        raise
    finished = finish_evaluation(platform.engine, row.id or 0, outcomes, threshold=suite.threshold)
    return _info(finished, agent_name, suite.name, version.number)


def _fail(platform: Platform, eval_run_id: int, message: str) -> None:
    with write_session(platform.engine) as session:
        row = session.get(EvalRun, eval_run_id)
        if row is not None:
            row.status = EvalRunStatus.ERROR
            row.error = message[:2000]
            session.add(row)


def evaluation_results(
    platform: Platform, actor: Actor, eval_run_id: int
) -> tuple[EvaluationInfo, tuple[CaseResult, ...]]:
    """One evaluation run and each of its attempts' results, cases in the suite's order.

    Raises:
        NotFound: no such evaluation run.
    """
    require(actor, READ_ROLES, f"read evaluation {eval_run_id}")
    with read_session(platform.engine) as session:
        row = session.get(EvalRun, eval_run_id)
        if row is None:
            raise NotFound(f"evaluation {eval_run_id} does not exist.")
        info = _info_of(session, row)
        rows = session.exec(
            select(EvalResult, EvalCase)
            .join(EvalCase, col(EvalCase.id) == col(EvalResult.case_id))
            .where(col(EvalResult.eval_run_id) == eval_run_id)
            .order_by(col(EvalCase.id), col(EvalResult.attempt))
        ).all()
        results = tuple(
            CaseResult(
                case=case.name,
                tags=tuple(case.tags),
                attempt=result.attempt,
                passed=result.passed,
                failures=tuple(result.details.get("failures", ())),
                status=str(result.details.get("status", "")),
                run_id=result.run_id,
                duration_ms=result.duration_ms,
            )
            for result, case in rows
        )
    return info, results


def list_evaluations(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    suite: str | None = None,
    limit: int = 50,
) -> tuple[EvaluationInfo, ...]:
    """The agent's evaluation runs, newest first.

    Raises:
        NotFound: no such agent or suite.
    """
    require(actor, READ_ROLES, f"read the evaluations of {agent_name!r}")
    with read_session(platform.engine) as session:
        agent = agent_named(session, agent_name)
        query = (
            select(EvalRun)
            .join(EvalSuite, col(EvalSuite.id) == col(EvalRun.suite_id))
            .where(col(EvalSuite.agent_id) == agent.id)
        )
        if suite is not None:
            query = query.where(col(EvalSuite.id) == suite_row(session, agent_name, suite)[1].id)
        rows = session.exec(query.order_by(col(EvalRun.id).desc()).limit(limit)).all()
        return tuple(_info_of(session, row) for row in rows)


def evaluation_page(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    suite: str | None = None,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> Page[EvaluationInfo]:
    """One page of the agent's evaluation runs (of one suite when named), newest first.

    Raises:
        NotFound: no such agent or suite.
        InvalidInput: the window is out of range.
    """
    require(actor, READ_ROLES, f"read the evaluations of {agent_name!r}")
    check_window(offset, limit, "evaluations")
    with read_session(platform.engine) as session:
        agent = agent_named(session, agent_name)
        suite_ids = select(EvalSuite.id).where(col(EvalSuite.agent_id) == agent.id)
        if suite is not None:
            suite_ids = suite_ids.where(
                col(EvalSuite.id) == suite_row(session, agent_name, suite)[1].id
            )
        chosen = col(EvalRun.suite_id).in_(suite_ids)
        total = session.exec(select(func.count()).select_from(EvalRun).where(chosen)).one()
        rows = session.exec(
            select(EvalRun)
            .where(chosen)
            .order_by(col(EvalRun.id).desc())
            .offset(offset)
            .limit(limit)
        ).all()
        items = tuple(_info_of(session, row) for row in rows)
    return Page(items, int(total), offset, limit)


def _version(session: Session, agent_name: str, number: int | None) -> tuple[Agent, AgentVersion]:
    agent = agent_named(session, agent_name)
    if number is None:
        if agent.active_version_id is None:
            raise InvalidInput(
                f"agent {agent_name!r} has no active version; name one with --version."
            )
        version = session.get(AgentVersion, agent.active_version_id)
    else:
        version = session.exec(
            select(AgentVersion)
            .where(col(AgentVersion.agent_id) == agent.id)
            .where(col(AgentVersion.number) == number)
        ).first()
    if version is None:
        raise NotFound(f"agent {agent_name!r} has no version {number}.")
    return agent, version


def _info_of(session: Session, row: EvalRun) -> EvaluationInfo:
    suite = session.get(EvalSuite, row.suite_id)
    version = session.get(AgentVersion, row.version_id)
    agent = session.get(Agent, suite.agent_id) if suite is not None else None
    return _info(
        row,
        agent.name if agent else "?",
        suite.name if suite else "?",
        version.number if version else 0,
    )


def _info(row: EvalRun, agent: str, suite: str, version: int) -> EvaluationInfo:
    assert row.id is not None
    return EvaluationInfo(
        id=row.id,
        agent=agent,
        suite=suite,
        suite_hash=row.suite_hash,
        version=version,
        version_hash=row.version_hash,
        status=row.status,
        passed=row.passed,
        failed=row.failed,
        repeat=row.repeat,
        concurrency=row.concurrency,
        trigger=row.trigger,
        summary=dict(row.summary),
        created_by=row.created_by,
        created_at=row.created_at,
        finished_at=row.finished_at,
        error=row.error,
    )
