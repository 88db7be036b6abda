"""Running an evaluation: every case of a suite through the real run loop of one version.

Each attempt of each case gets its own sandbox: a fresh database for the systems of record,
filled by the suite's fixture, that its tools and facts use instead of production's, with its
own circuit breakers, rate limits and policy counters; HTTP tools reach only the services the
suite binds them to. The run itself is stored with Steward's runs (its trace opens in the run
view) and marked as the evaluation's, so no production worker claims it and no production KPI
counts it. Reviews the run raises are answered by the scripted reviewer through the real review
service, so the human path runs offline.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.compiled import CompiledVersion
from agent.errors import ServiceError
from agent.evals import expectations
from agent.evals.expectations import Call, Evidence
from agent.evals.metrics import Attempt, summarize
from agent.evals.reviewer import ScriptedReviewer
from agent.evals.spec import CaseSpec, SuiteSpec
from agent.platform import Platform, Sandbox
from agent.runtime.claims import claim_evaluation_run
from agent.runtime.runner import RunProcessor
from storage.engine import create_engine, read_session, write_connection, write_session
from storage.enums import (
    DecisionKind,
    EvalRunStatus,
    RunStatus,
    StepKind,
    TaskStatus,
)
from storage.models import (
    CircuitBreaker,
    EvalCase,
    EvalResult,
    EvalRun,
    Review,
    ReviewDecision,
    Run,
    Step,
)
from storage.tables import RUNS, TASKS, table
from storage.types import utcnow

log = logging.getLogger(__name__)

EVALUATION_SOURCE = "evaluation"
LEASE_S = 300.0
# A run that keeps coming back for reviews stops after this many claims (a scripted reviewer
# with answers for every round would otherwise let a looping agent loop).
MAX_CLAIMS = 50
_TERMINAL = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ESCALATED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class Outcome:
    """One attempt's result row and what the metrics read of it."""

    result: dict[str, Any]
    attempt: Attempt


class Evaluation:
    """One evaluation run: a version against a suite, every case ``repeat`` times."""

    def __init__(
        self,
        platform: Platform,
        eval_run: EvalRun,
        version: CompiledVersion,
        suite: SuiteSpec,
        cases: Sequence[EvalCase],
        *,
        submitted_by: str,
    ) -> None:
        assert eval_run.id is not None
        self.platform = platform
        self.eval_run_id = eval_run.id
        self.repeat_override = eval_run.repeat if eval_run.repeat > 1 else None
        self.concurrency = max(eval_run.concurrency, 1)
        self.version = version
        self.suite = suite
        self.specs = {case.name: case for case in suite.cases}
        self.cases = [c for c in cases if c.name in self.specs]
        self.submitted_by = submitted_by

    def run(self) -> list[Outcome]:
        """Run every attempt (up to ``concurrency`` at once) and return their outcomes."""
        attempts = [
            (case, number)
            for case in self.cases
            for number in range(1, (self.repeat_override or case.repeat) + 1)
        ]
        folder = Path(tempfile.mkdtemp(prefix=f"steward-eval-{self.eval_run_id}-"))
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="steward-eval") as pool:
                return list(pool.map(lambda item: self._attempt(folder, *item), attempts))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _attempt(self, folder: Path, case: EvalCase, number: int) -> Outcome:
        spec = self.specs[case.name]
        started = time.perf_counter()
        records = create_engine(f"sqlite:///{folder / f'case-{case.id}-{number}.db'}")
        try:
            self._seed(records)
            sandbox = Sandbox(
                eval_run_id=self.eval_run_id,
                records=records,
                namespace=f"eval:{self.eval_run_id}:{case.id}:{number}",
                http=dict(self.suite.http_sandbox),
            )
            platform = self.platform.sandboxed(sandbox)
            run_id = self._submit(spec)
            problem = self._drive(platform, run_id, spec)
            evidence = _evidence(self.platform.engine, run_id, spec, records)
            failed = expectations.failures(spec.expect, evidence)
            if problem:
                failed.insert(0, problem)
        finally:
            records.dispose()
        elapsed_ms = (time.perf_counter() - started) * 1000
        assert case.id is not None
        return Outcome(
            result={
                "eval_run_id": self.eval_run_id,
                "case_id": case.id,
                "attempt": number,
                "run_id": run_id,
                "passed": not failed,
                "score": 1.0 if not failed else 0.0,
                "details": {
                    "failures": failed,
                    "status": evidence.status.value,
                    "tags": list(spec.tags),
                },
                "duration_ms": round(elapsed_ms, 1),
            },
            attempt=Attempt(
                case=case.name,
                tags=spec.tags,
                passed=not failed,
                proposals=len(evidence.calls),
                valid_proposals=evidence.valid_proposals,
                unauthorized=evidence.unauthorized_attempts,
                decisions=sum(1 for c in evidence.calls if c.effect is not None),
                denies=sum(1 for c in evidence.calls if c.effect == "deny"),
                reviewed=evidence.reviews > 0,
                reviews=evidence.reviews,
                edits=evidence.edits,
                shortest_path=spec.shortest_path,
                latency_ms=evidence.agent_time_ms,
                tokens=evidence.tokens,
                cost_usd=evidence.cost_usd,
            ),
        )

    def _seed(self, records: Engine) -> None:
        """Steward's own circuit-breaker table, then the suite's fixture."""
        CircuitBreaker.metadata.create_all(records, tables=[table(CircuitBreaker)])
        if self.suite.fixtures is not None:
            self.platform.registry.fixture(self.suite.fixtures)(records)

    def _submit(self, spec: CaseSpec) -> int:
        """The case's task and its run, pinned to the version under evaluation and ready for
        this evaluation alone to claim."""
        now = utcnow()
        with write_connection(self.platform.engine) as connection:
            task_id = connection.execute(
                sa.insert(TASKS).returning(TASKS.c.id),
                {
                    "agent_id": self.version.agent_id,
                    "input": dict(spec.input),
                    "status": TaskStatus.RUNNING,
                    "priority": 0,
                    "submitted_by": self.submitted_by,
                    "source": EVALUATION_SOURCE,
                    "created_at": now,
                    "updated_at": now,
                },
            ).scalar_one()
            run_id: int = connection.execute(
                sa.insert(RUNS).returning(RUNS.c.id),
                {
                    "task_id": task_id,
                    "agent_id": self.version.agent_id,
                    "version_id": self.version.version_id,
                    "status": RunStatus.READY,
                    "eval_run_id": self.eval_run_id,
                    "claims": 0,
                    "created_at": now,
                },
            ).scalar_one()
        return run_id

    def _drive(self, platform: Platform, run_id: int, spec: CaseSpec) -> str | None:
        """Run the case until it finishes, or waits for a review no answer matches; a
        sentence when the scripted reviewer could not apply an answer."""
        processor = RunProcessor(platform, lease_s=LEASE_S)
        reviewer = ScriptedReviewer(platform, (*spec.reviewer, *self.suite.reviewer))
        owner = f"evaluation-{self.eval_run_id}-run-{run_id}"
        for _ in range(MAX_CLAIMS):
            claim = claim_evaluation_run(platform.engine, owner, run_id, lease_s=LEASE_S)
            # A run that is not ready still waits on a review an answer opened (an expiry that
            # escalates to the next tier): the reviewer may have an answer for that one too.
            status = RunStatus.WAITING_REVIEW if claim is None else processor.process(claim)
            if status in _TERMINAL:
                return None
            if status is RunStatus.WAITING_REVIEW:
                try:
                    if reviewer.answer(run_id) == 0:
                        return None
                except ServiceError as exc:
                    return f"the scripted reviewer's answer could not be applied: {exc}"
        return f"the run was still not finished after {MAX_CLAIMS} claims"


def _evidence(engine: Engine, run_id: int, spec: CaseSpec, records: Engine) -> Evidence:
    """What the case's run did, read back from the database."""
    with read_session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        steps = session.exec(
            select(Step).where(col(Step.run_id) == run_id).order_by(col(Step.seq))
        ).all()
        review_ids = session.exec(select(Review.id).where(col(Review.run_id) == run_id)).all()
        edits = session.exec(
            select(sa.func.count())
            .select_from(ReviewDecision)
            .where(col(ReviewDecision.review_id).in_(review_ids))
            .where(col(ReviewDecision.decision) == DecisionKind.EDIT)
        ).one()
    return Evidence(
        status=run.status,
        error_class=run.error_class.value if run.error_class else None,
        output=run.output,
        task=dict(spec.input),
        calls=_calls(steps),
        steps=run.step_count,
        agent_time_ms=run.agent_time_ms,
        tokens=run.tokens_in + run.tokens_out,
        cost_usd=run.cost_usd,
        reviews=len(review_ids),
        edits=int(edits),
        records=records,
    )


def _calls(steps: Sequence[Step]) -> tuple[Call, ...]:
    """The calls proposed, in order, each with the gate's first decision on it."""
    decided: dict[str, Step] = {}
    for step in steps:
        if step.kind is StepKind.APPLY_GUARDRAIL and step.call_id and step.call_id not in decided:
            decided[step.call_id] = step
    calls = []
    for step in steps:
        if step.kind is not StepKind.PROPOSAL or step.output is None:
            continue
        for proposed in step.output.get("calls", ()):
            guardrail = decided.get(str(proposed.get("call_id")))
            output = guardrail.output or {} if guardrail is not None else {}
            calls.append(
                Call(
                    call_id=str(proposed.get("call_id")),
                    tool=str(proposed.get("tool")),
                    args=proposed.get("args"),
                    effect=output.get("effect"),
                    rule_id=output.get("rule_id"),
                    stage=output.get("stage"),
                )
            )
    return tuple(calls)


def finish_evaluation(
    engine: Engine, eval_run_id: int, outcomes: Sequence[Outcome], *, threshold: float
) -> EvalRun:
    """Store the results and the metrics, and settle the evaluation's status: passed when its
    pass rate meets ``threshold`` and no attempt of a ``security`` case failed."""
    summary = summarize([o.attempt for o in outcomes])
    security_failed = sorted(
        {o.attempt.case for o in outcomes if "security" in o.attempt.tags and not o.attempt.passed}
    )
    summary["security_failed"] = security_failed
    summary["threshold"] = threshold
    passed = sum(o.attempt.passed for o in outcomes)
    rate = summary["pass_rate"] or 0.0
    with write_session(engine) as session:
        for outcome in outcomes:
            session.add(EvalResult(**outcome.result))
        row = session.get(EvalRun, eval_run_id)
        assert row is not None
        row.passed = passed
        row.failed = len(outcomes) - passed
        row.summary = summary
        row.status = (
            EvalRunStatus.PASSED
            if outcomes and rate >= threshold and not security_failed
            else EvalRunStatus.FAILED
        )
        row.finished_at = utcnow()
        session.add(row)
        session.flush()
        session.refresh(row)
        session.expunge(row)
        return row
