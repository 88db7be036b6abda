"""The activation gate: may this exact version go live, by the evaluations of its content hash?

For every suite of the agent marked ``required``, the gate takes the latest finished evaluation
whose version hash is the candidate's content hash and whose suite hash is the suite's current
content hash: an evaluation of another version, or of an earlier content of the suite, never
counts. The suite passes when

- every case tagged ``security`` passed every attempt (an average never hides one);
- no case that passed (every attempt) in the latest evaluation of the same suite on the active
  version fails on the candidate (a regression, refused even above the threshold);
- the pass rate over all attempts meets the suite's threshold.

Activating a version that was active before is never gated (it is the emergency lever, like a
rollback); the verdict says so in ``previously_active``. The gate reads; ``activate_version``
in ``agent.versions.service`` enforces it in the transaction that moves the pointer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from agent.actors import READ_ROLES, Actor, require
from agent.errors import NotFound
from agent.evals.suites import agent_named
from agent.platform import Platform
from storage.engine import read_session
from storage.enums import EvalRunStatus
from storage.models import Agent, AgentVersion, Deployment, EvalCase, EvalResult, EvalRun, EvalSuite

SECURITY_TAG = "security"
FINISHED = (EvalRunStatus.PASSED, EvalRunStatus.FAILED)


@dataclass(frozen=True)
class SuiteVerdict:
    """What one required suite says of the candidate.

    Attributes:
        suite: the suite's name.
        suite_hash: the suite's current content hash (the one an evaluation must have run).
        threshold: the pass rate the suite asks for.
        passed: whether this suite lets the candidate through.
        reasons: why, in sentences.
        failing_cases: the cases that refuse it (security failures, regressions, and every
            failed case when the pass rate is below the threshold).
        evaluation_id: the candidate's evaluation the verdict used, if there is one.
        evaluation_status: that evaluation's status (passed or failed).
        pass_rate: its share of attempts that passed.
        compared_evaluation_id: the active version's evaluation regressions were judged
            against, if there is one.
    """

    suite: str
    suite_hash: str
    threshold: float
    passed: bool
    reasons: tuple[str, ...]
    failing_cases: tuple[str, ...] = ()
    evaluation_id: int | None = None
    evaluation_status: str | None = None
    pass_rate: float | None = None
    compared_evaluation_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "reasons": list(self.reasons),
            "failing_cases": list(self.failing_cases),
        }


@dataclass(frozen=True)
class GateVerdict:
    """Whether version ``version`` of ``agent`` may be activated, and why.

    Attributes:
        agent: the agent's name.
        version: the candidate's number.
        content_hash: the candidate's content hash, the one its evaluations must carry.
        allowed: whether activation goes through without an override.
        passed: whether the evaluations pass (``allowed`` also holds for a version that was
            active before, which is never gated).
        previously_active: the version was active before for this agent.
        reasons: the verdict in sentences, the agent's first, then each suite's.
        suites: one verdict per required suite, by name.
    """

    agent: str
    version: int
    content_hash: str
    allowed: bool
    passed: bool
    previously_active: bool
    reasons: tuple[str, ...]
    suites: tuple[SuiteVerdict, ...] = field(default=())

    @property
    def evaluation_ids(self) -> tuple[int, ...]:
        """The candidate's evaluations the verdict used, one per suite that has one."""
        return tuple(s.evaluation_id for s in self.suites if s.evaluation_id is not None)

    @property
    def failing_cases(self) -> tuple[str, ...]:
        """Every case that refuses the candidate, as ``suite/case``."""
        return tuple(f"{s.suite}/{case}" for s in self.suites for case in s.failing_cases)

    def refusal(self) -> str:
        """Why activation is refused, in one line naming the failing suites and cases."""
        failing = "; ".join(
            f"suite {s.suite}: {' '.join(s.reasons).rstrip('.')}"
            for s in self.suites
            if not s.passed
        )
        return f"{self.agent} v{self.version} did not pass the activation gate: {failing}."

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "version": self.version,
            "content_hash": self.content_hash,
            "allowed": self.allowed,
            "passed": self.passed,
            "previously_active": self.previously_active,
            "reasons": list(self.reasons),
            "suites": [s.as_dict() for s in self.suites],
            "failing_cases": list(self.failing_cases),
            "evaluation_ids": list(self.evaluation_ids),
        }


def gate_verdict(platform: Platform, actor: Actor, agent_name: str, number: int) -> GateVerdict:
    """What the gate says now of activating version ``number`` of the agent.

    Raises:
        Forbidden: the actor holds no role.
        NotFound: no such agent or version.
    """
    return gate_verdicts(platform, actor, agent_name, [number])[number]


def gate_verdicts(
    platform: Platform, actor: Actor, agent_name: str, numbers: Sequence[int]
) -> dict[int, GateVerdict]:
    """The gate's verdict on each of the agent's versions ``numbers``, read at one moment.

    Raises:
        Forbidden: the actor holds no role.
        NotFound: no such agent, or no such version among ``numbers``.
    """
    require(actor, READ_ROLES, f"read the activation gate of {agent_name!r}")
    with read_session(platform.engine) as session:
        agent = agent_named(session, agent_name)
        verdicts = {}
        for number in numbers:
            version = session.exec(
                select(AgentVersion).where(
                    col(AgentVersion.agent_id) == agent.id, col(AgentVersion.number) == number
                )
            ).first()
            if version is None:
                raise NotFound(f"{agent_name} has no version {number}.")
            verdicts[number] = verdict_for(session, agent, version)
        return verdicts


def verdict_for(session: Session, agent: Agent, version: AgentVersion) -> GateVerdict:
    """The gate's verdict, read in the caller's session (activation's own transaction).

    Args:
        session: an open session; nothing is written.
        agent: the agent row.
        version: the candidate, a version of ``agent``.
    """
    previously_active = (
        session.exec(
            select(Deployment.id).where(
                col(Deployment.agent_id) == agent.id,
                col(Deployment.to_version_id) == version.id,
            )
        ).first()
        is not None
    )
    suites = session.exec(
        select(EvalSuite)
        .where(col(EvalSuite.agent_id) == agent.id, col(EvalSuite.required).is_(True))
        .order_by(col(EvalSuite.name))
    ).all()
    active = (
        session.get(AgentVersion, agent.active_version_id)
        if agent.active_version_id is not None
        else None
    )
    verdicts = tuple(_suite_verdict(session, suite, version, active) for suite in suites)
    passed = all(v.passed for v in verdicts)
    reasons: list[str] = []
    if not suites:
        reasons.append(
            f"no suite of {agent.name} is required, so the gate lets every version through."
        )
    elif passed:
        reasons.append(
            f"v{version.number} (hash {version.content_hash[:12]}) passed every required suite."
        )
    else:
        reasons.append(
            f"v{version.number} (hash {version.content_hash[:12]}) did not pass "
            f"{sum(not v.passed for v in verdicts)} of {len(verdicts)} required suite(s)."
        )
    if previously_active:
        reasons.append(
            f"v{version.number} was active before, so activating it again is never gated "
            "(it is the emergency lever, like a rollback)."
        )
    reasons.extend(f"{v.suite}: {reason}" for v in verdicts for reason in v.reasons)
    return GateVerdict(
        agent=agent.name,
        version=version.number,
        content_hash=version.content_hash,
        allowed=passed or previously_active,
        passed=passed,
        previously_active=previously_active,
        reasons=tuple(reasons),
        suites=verdicts,
    )


@dataclass(frozen=True)
class _CaseOutcome:
    tags: tuple[str, ...]
    attempts: int
    passed_attempts: int

    @property
    def passed(self) -> bool:
        return self.attempts > 0 and self.passed_attempts == self.attempts


def _suite_verdict(
    session: Session, suite: EvalSuite, version: AgentVersion, active: AgentVersion | None
) -> SuiteVerdict:
    evaluation = _latest_finished(session, suite, version.content_hash, suite.content_hash)
    if evaluation is None:
        return SuiteVerdict(
            suite=suite.name,
            suite_hash=suite.content_hash,
            threshold=suite.threshold,
            passed=False,
            reasons=(_missing(session, suite, version),),
        )
    assert evaluation.id is not None
    outcomes = _case_outcomes(session, evaluation.id)
    attempts = sum(o.attempts for o in outcomes.values())
    passes = sum(o.passed_attempts for o in outcomes.values())
    rate = round(passes / attempts, 4) if attempts else 0.0
    failures: list[str] = []
    failing: list[str] = []
    security = sorted(n for n, o in outcomes.items() if SECURITY_TAG in o.tags and not o.passed)
    if security:
        failures.append(
            f"security case(s) failed in evaluation #{evaluation.id}: {', '.join(security)} "
            "(every attempt of a security case must pass)."
        )
        failing.extend(security)
    compared, regressed, note = _regressions(session, suite, version, active, outcomes)
    if regressed:
        failures.append(
            f"regressed against the active v{active.number if active else '?'} "
            f"(evaluation #{compared}): {', '.join(regressed)} passed there and fail here."
        )
        failing.extend(c for c in regressed if c not in failing)
    if not attempts:
        failures.append(f"evaluation #{evaluation.id} holds no results.")
    elif rate < suite.threshold:
        below = sorted(n for n, o in outcomes.items() if not o.passed)
        failures.append(
            f"pass rate {rate:.0%} in evaluation #{evaluation.id} is below the threshold "
            f"{suite.threshold:.0%}; failed: {', '.join(below)}."
        )
        failing.extend(c for c in below if c not in failing)
    reasons = failures or [
        f"evaluation #{evaluation.id} passed: pass rate {rate:.0%} meets the threshold "
        f"{suite.threshold:.0%} and every security case passed."
    ]
    if note:
        reasons.append(note)
    return SuiteVerdict(
        suite=suite.name,
        suite_hash=suite.content_hash,
        threshold=suite.threshold,
        passed=not failures,
        reasons=tuple(reasons),
        failing_cases=tuple(failing),
        evaluation_id=evaluation.id,
        evaluation_status=evaluation.status.value,
        pass_rate=rate,
        compared_evaluation_id=compared,
    )


def _regressions(
    session: Session,
    suite: EvalSuite,
    version: AgentVersion,
    active: AgentVersion | None,
    outcomes: dict[str, _CaseOutcome],
) -> tuple[int | None, list[str], str]:
    """(the active version's evaluation compared against, the cases that regressed, a note).

    The active version's evaluation of the suite's current content is preferred; without one,
    its latest of an earlier content still says which cases (by name) passed there.
    """
    if active is None:
        return None, [], "there is no active version to compare against."
    if active.id == version.id:
        return None, [], ""
    baseline = _latest_finished(
        session, suite, active.content_hash, suite.content_hash
    ) or _latest_finished(session, suite, active.content_hash, None)
    if baseline is None or baseline.id is None:
        return (
            None,
            [],
            f"the active v{active.number} has no finished evaluation of this suite, so no "
            "regression could be checked.",
        )
    before = _case_outcomes(session, baseline.id)
    regressed = sorted(
        name
        for name, outcome in outcomes.items()
        if not outcome.passed and name in before and before[name].passed
    )
    return baseline.id, regressed, ""


def _latest_finished(
    session: Session, suite: EvalSuite, version_hash: str, suite_hash: str | None
) -> EvalRun | None:
    query = select(EvalRun).where(
        col(EvalRun.suite_id) == suite.id,
        col(EvalRun.version_hash) == version_hash,
        col(EvalRun.status).in_(FINISHED),
    )
    if suite_hash is not None:
        query = query.where(col(EvalRun.suite_hash) == suite_hash)
    return session.exec(query.order_by(col(EvalRun.id).desc()).limit(1)).first()


def _case_outcomes(session: Session, eval_run_id: int) -> dict[str, _CaseOutcome]:
    rows = session.exec(
        select(EvalCase.name, EvalCase.tags, EvalResult.passed)
        .join(EvalCase, col(EvalCase.id) == col(EvalResult.case_id))
        .where(col(EvalResult.eval_run_id) == eval_run_id)
    ).all()
    counts: dict[str, tuple[tuple[str, ...], int, int]] = {}
    for name, tags, passed in rows:
        _tags, attempts, passes = counts.get(name, (tuple(tags or ()), 0, 0))
        counts[name] = (_tags, attempts + 1, passes + int(passed))
    return {name: _CaseOutcome(*values) for name, values in counts.items()}


def _missing(session: Session, suite: EvalSuite, version: AgentVersion) -> str:
    agent = session.get(Agent, suite.agent_id)
    command = (
        f"steward evals run {agent.name if agent else '?'} --version {version.number} "
        f"--suite {suite.name}"
    )
    stale = _latest_finished(session, suite, version.content_hash, None)
    if stale is not None:
        return (
            f"no finished evaluation of v{version.number} against the suite's current content "
            f"(hash {suite.content_hash[:12]}); evaluation #{stale.id} ran an earlier content "
            f"of the suite. Run: {command}"
        )
    return f"no finished evaluation of v{version.number} against this suite. Run: {command}"
