"""Two evaluation runs side by side: what changed per case (regressed, fixed, unchanged, added,
removed) and per metric (A, B and the delta).

Cases are matched by name. A case passes in a run when every attempt of it passed there (the
pass^k view: a case that passes only sometimes is not relied on). Runs of different suites
compare only on the cases they share; runs of different agents do not compare at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent.actors import READ_ROLES, Actor, require
from agent.errors import InvalidInput
from agent.evals.service import CaseResult, EvaluationInfo, evaluation_results
from agent.platform import Platform


class Verdict(StrEnum):
    """How one case changed from evaluation A to evaluation B; the order is how they are listed,
    most worrying first."""

    REGRESSED = "regressed"
    FIXED = "fixed"
    UNCHANGED_FAIL = "unchanged_fail"
    ADDED = "added"
    REMOVED = "removed"
    UNCHANGED_PASS = "unchanged_pass"  # noqa: S105 - a verdict, not a password


_ORDER = {verdict: index for index, verdict in enumerate(Verdict)}


@dataclass(frozen=True)
class CaseChange:
    """One case in both evaluations (or in one of them).

    Attributes:
        case: the case's name.
        verdict: how it changed.
        passed_a: whether every attempt passed in A (None: not in A).
        passed_b: whether every attempt passed in B (None: not in B).
        failures_b: what failed in B, in words (each distinct sentence once).
        run_b: the run of B's first failing attempt (else its first attempt), to open its trace.
    """

    case: str
    verdict: Verdict
    passed_a: bool | None
    passed_b: bool | None
    failures_b: tuple[str, ...]
    run_b: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "verdict": self.verdict.value,
            "failures_b": list(self.failures_b),
        }


@dataclass(frozen=True)
class MetricChange:
    """One numeric metric of the two runs' summaries (``by_tag.security`` for a tag's pass
    rate, ``latency_ms.p95`` for a percentile); None where a run has no value."""

    metric: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return round(self.b - self.a, 6)

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "a": self.a, "b": self.b, "delta": self.delta}


@dataclass(frozen=True)
class Comparison:
    """Evaluation A against evaluation B.

    Attributes:
        a, b: the two evaluations.
        same_suite: whether both ran the same suite; when not, ``shared_cases`` says how many
            cases they have in common (only those are regressed, fixed or unchanged).
        cases: every case, regressed first.
        metrics: every numeric metric of either summary, by name.
    """

    a: EvaluationInfo
    b: EvaluationInfo
    same_suite: bool
    shared_cases: int
    cases: tuple[CaseChange, ...]
    metrics: tuple[MetricChange, ...]

    def of(self, verdict: Verdict) -> tuple[CaseChange, ...]:
        """The cases with this verdict."""
        return tuple(c for c in self.cases if c.verdict is verdict)

    @property
    def counts(self) -> dict[str, int]:
        """How many cases have each verdict (every verdict named, zero included)."""
        return {v.value: len(self.of(v)) for v in Verdict}

    @property
    def note(self) -> str | None:
        """What a reader must know before trusting the comparison, or None."""
        if self.same_suite:
            if self.a.suite_hash != self.b.suite_hash:
                return (
                    f"suite {self.b.suite} changed between the two evaluations; cases are "
                    "matched by name."
                )
            return None
        return (
            f"different suites ({self.a.suite} and {self.b.suite}): only the "
            f"{self.shared_cases} cases they share are compared as regressed, fixed or unchanged."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "same_suite": self.same_suite,
            "shared_cases": self.shared_cases,
            "note": self.note,
            "counts": self.counts,
            "cases": [c.as_dict() for c in self.cases],
            "metrics": [m.as_dict() for m in self.metrics],
        }


def compare_evaluations(platform: Platform, actor: Actor, a_id: int, b_id: int) -> Comparison:
    """Compare evaluation ``a_id`` (the baseline) with evaluation ``b_id``.

    Raises:
        Forbidden: the actor reads no console page.
        NotFound: either evaluation does not exist.
        InvalidInput: the evaluations are of different agents, or of different suites that
            share no case.
    """
    require(actor, READ_ROLES, f"compare evaluations {a_id} and {b_id}")
    info_a, results_a = evaluation_results(platform, actor, a_id)
    info_b, results_b = evaluation_results(platform, actor, b_id)
    if info_a.agent != info_b.agent:
        raise InvalidInput(
            f"evaluation {a_id} is of agent {info_a.agent!r} and {b_id} of {info_b.agent!r}; "
            "compare two evaluations of one agent."
        )
    by_case_a = _by_case(results_a)
    by_case_b = _by_case(results_b)
    shared = by_case_a.keys() & by_case_b.keys()
    same_suite = info_a.suite == info_b.suite
    if not same_suite and not shared:
        raise InvalidInput(
            f"evaluations {a_id} ({info_a.suite}) and {b_id} ({info_b.suite}) share no case; "
            "there is nothing to compare."
        )
    changes = [
        _change(name, by_case_a.get(name), by_case_b.get(name))
        for name in (*by_case_a, *(n for n in by_case_b if n not in by_case_a))
    ]
    changes.sort(key=lambda c: _ORDER[c.verdict])
    return Comparison(
        a=info_a,
        b=info_b,
        same_suite=same_suite,
        shared_cases=len(shared),
        cases=tuple(changes),
        metrics=_metrics(info_a.summary, info_b.summary),
    )


def _by_case(results: Sequence[CaseResult]) -> dict[str, list[CaseResult]]:
    cases: dict[str, list[CaseResult]] = {}
    for result in results:
        cases.setdefault(result.case, []).append(result)
    return cases


def _change(
    name: str, a: Sequence[CaseResult] | None, b: Sequence[CaseResult] | None
) -> CaseChange:
    passed_a = all(r.passed for r in a) if a else None
    passed_b = all(r.passed for r in b) if b else None
    if passed_a is None:
        verdict = Verdict.ADDED
    elif passed_b is None:
        verdict = Verdict.REMOVED
    elif passed_a and not passed_b:
        verdict = Verdict.REGRESSED
    elif passed_b and not passed_a:
        verdict = Verdict.FIXED
    else:
        verdict = Verdict.UNCHANGED_PASS if passed_b else Verdict.UNCHANGED_FAIL
    failures: dict[str, None] = {}
    for result in b or ():
        failures.update(dict.fromkeys(result.failures))
    shown = next((r for r in b or () if not r.passed), b[0] if b else None)
    return CaseChange(
        case=name,
        verdict=verdict,
        passed_a=passed_a,
        passed_b=passed_b,
        failures_b=tuple(failures),
        run_b=shown.run_id if shown is not None else None,
    )


def _metrics(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[MetricChange, ...]:
    numbers_a = dict(_numbers(a))
    numbers_b = dict(_numbers(b))
    names = sorted(numbers_a.keys() | numbers_b.keys())
    return tuple(MetricChange(name, numbers_a.get(name), numbers_b.get(name)) for name in names)


def _numbers(summary: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every numeric value of a summary, nested ones named with dots; lists (failed cases,
    flaky cases) are not metrics."""
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            yield name, float(value)
        elif isinstance(value, Mapping):
            yield from _numbers(value, f"{name}.")
