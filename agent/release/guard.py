"""A canary's guard: its candidate against its baseline on governance health, with the
significance of every difference and the sample sizes behind it.

Eight figures are compared, each in the direction that is worse:

=================  ======================================================  ===================
figure             per                                                     test (one-sided)
=================  ======================================================  ===================
completion rate    ended runs that succeeded                               Fisher's exact
escalation rate    settled runs that raised an escalation                  Fisher's exact
deny rate          settled runs the policy denied a call                   Fisher's exact
tool error rate    settled runs with a failed (or unknown) tool call       Fisher's exact
override rate      decided reviews a person overrode                       Fisher's exact
edit rate          decided reviews a person edited                         Fisher's exact
cost per task      ended runs' cost, mean                                  Mann-Whitney U
p95 latency        ended runs' agent time (human waits left out), p95      Mann-Whitney U
=================  ======================================================  ===================

A figure *breaches* when both arms have at least ``min_samples`` observations, the candidate is
worse than the baseline by more than the figure's threshold (absolute for rates, relative for
cost and latency), and the test says the difference is significant at ``alpha`` divided by the
number of guarded figures (Bonferroni: eight tests at once must not raise eight times the false
alarms). The effect threshold is what keeps a guard that is checked again and again from rolling
back on noise; a wrongly rolled-back canary costs a restart, a wrongly kept one costs users.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.errors import InvalidInput
from storage.enums import ReviewStatus, RunStatus
from storage.queries.canary import ReviewObservation, RunObservation

DEFAULT_MIN_SAMPLES = 30
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Figure:
    """One compared figure: its key, label, and how a threshold on it reads."""

    key: str
    label: str
    relative: bool  # the threshold is a relative increase (cost, latency), else absolute
    higher_is_worse: bool
    default_threshold: float

    def threshold_text(self, threshold: float) -> str:
        if self.relative:
            return f"+{threshold:.0%}"
        return f"{'+' if self.higher_is_worse else '-'}{threshold * 100:.0f} points"


FIGURES: tuple[Figure, ...] = (
    Figure("completion_rate", "completion rate", False, False, 0.10),
    Figure("escalation_rate", "escalation rate", False, True, 0.10),
    Figure("deny_rate", "deny rate", False, True, 0.10),
    Figure("tool_error_rate", "tool error rate", False, True, 0.05),
    Figure("override_rate", "override rate", False, True, 0.10),
    Figure("edit_rate", "reviewer-edit rate", False, True, 0.15),
    Figure("cost_per_task", "cost per task (USD)", True, True, 0.50),
    Figure("latency_p95", "p95 latency (ms)", True, True, 0.50),
)
_FIGURES = {figure.key: figure for figure in FIGURES}


@dataclass(frozen=True)
class CanaryGuard:
    """What a canary is held to: a threshold per figure (None: not guarded), the observations
    each arm needs before a figure can breach, and the significance level."""

    thresholds: Mapping[str, float | None] = field(
        default_factory=lambda: {f.key: f.default_threshold for f in FIGURES}
    )
    min_samples: int = DEFAULT_MIN_SAMPLES
    alpha: float = DEFAULT_ALPHA

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any] | None) -> CanaryGuard:
        """The guard a stored document describes; defaults for what it leaves out.

        Raises:
            InvalidInput: a key is not a figure or setting, or a value is out of range (the
                message names it).
        """
        stored = dict(stored or {})
        thresholds: dict[str, float | None] = {f.key: f.default_threshold for f in FIGURES}
        for key, value in dict(stored.pop("thresholds", {}) or {}).items():
            figure = _FIGURES.get(key)
            if figure is None:
                raise InvalidInput(
                    f"{key!r} is not a guarded figure; the figures are {', '.join(_FIGURES)}."
                )
            thresholds[key] = None if value is None else _threshold(figure, value)
        min_samples = _min_samples(stored.pop("min_samples", DEFAULT_MIN_SAMPLES))
        alpha = _alpha(stored.pop("alpha", DEFAULT_ALPHA))
        if stored:
            raise InvalidInput(
                f"{', '.join(sorted(stored))} is not a guard setting; the settings are "
                "thresholds, min_samples and alpha."
            )
        return cls(thresholds=thresholds, min_samples=min_samples, alpha=alpha)

    def with_changes(self, assignments: Sequence[str]) -> CanaryGuard:
        """This guard with ``KEY=VALUE`` assignments applied (a figure's key sets its
        threshold, ``off`` stops guarding it; ``min_samples`` and ``alpha`` set those).

        Raises:
            InvalidInput: an assignment is malformed or names nothing guardable.
        """
        document = self.as_dict()
        for assignment in assignments:
            key, sep, value = (part.strip() for part in assignment.partition("="))
            if not sep or not key or not value:
                raise InvalidInput(f"{assignment!r} is not KEY=VALUE (for example deny_rate=0.1).")
            if key in {"min_samples", "alpha"}:
                document[key] = value
            elif key in _FIGURES:
                document["thresholds"][key] = None if value.lower() == "off" else value
            else:
                known = ", ".join([*_FIGURES, "min_samples", "alpha"])
                raise InvalidInput(f"{key!r} is not a guard setting; the settings are {known}.")
        return CanaryGuard.from_dict(document)

    @property
    def guarded(self) -> tuple[Figure, ...]:
        return tuple(f for f in FIGURES if self.thresholds.get(f.key) is not None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "thresholds": {f.key: self.thresholds.get(f.key) for f in FIGURES},
            "min_samples": self.min_samples,
            "alpha": self.alpha,
        }


@dataclass(frozen=True)
class FigureComparison:
    """One figure for both arms, the test's p-value and what the guard makes of it."""

    key: str
    label: str
    baseline: float | None
    candidate: float | None
    baseline_n: int
    candidate_n: int
    threshold: float | None
    threshold_text: str
    p_value: float | None
    state: str  # "breach", "ok", "collecting" (too few observations), "not guarded"

    @property
    def breached(self) -> bool:
        return self.state == "breach"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Comparison:
    """A canary's candidate against its baseline, figure by figure."""

    figures: tuple[FigureComparison, ...]
    baseline_runs: int
    candidate_runs: int
    min_samples: int
    alpha: float
    corrected_alpha: float

    @property
    def breaches(self) -> tuple[FigureComparison, ...]:
        return tuple(f for f in self.figures if f.breached)

    @property
    def state(self) -> str:
        """``breach`` (roll back), ``collecting`` (an arm has fewer than ``min_samples``
        settled runs) or ``healthy`` (none breaches). A figure over fewer observations (the
        reviewer figures of an agent that rarely escalates) says so itself, without holding
        the canary in ``collecting`` for ever."""
        if self.breaches:
            return "breach"
        if min(self.baseline_runs, self.candidate_runs) < self.min_samples:
            return "collecting"
        return "healthy"

    def summary(self) -> str:
        """One sentence: what the guard concluded."""
        if self.breaches:
            parts = [
                f"{f.label} {_show(f.key, f.candidate)} against {_show(f.key, f.baseline)} "
                f"(p={f.p_value:.2g}, n={f.candidate_n}/{f.baseline_n})"
                for f in self.breaches
            ]
            return "the candidate is significantly worse: " + "; ".join(parts) + "."
        if self.state == "collecting":
            return (
                f"collecting: {self.candidate_runs} candidate and {self.baseline_runs} baseline "
                f"runs so far; each figure needs {self.min_samples} observations per arm."
            )
        return "healthy: no guarded figure is significantly worse on the candidate."

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "summary": self.summary(),
            "baseline_runs": self.baseline_runs,
            "candidate_runs": self.candidate_runs,
            "min_samples": self.min_samples,
            "alpha": self.alpha,
            "corrected_alpha": self.corrected_alpha,
            "figures": [f.as_dict() for f in self.figures],
        }


def compare(
    runs: Sequence[RunObservation],
    reviews: Sequence[ReviewObservation],
    *,
    baseline_version_id: int,
    candidate_version_id: int,
    guard: CanaryGuard,
) -> Comparison:
    """Compare the canary's arms on every figure under ``guard``."""
    arms = {baseline_version_id: _Arm(), candidate_version_id: _Arm()}
    for run in runs:
        arm = arms.get(run.version_id)
        if arm is not None:
            arm.add_run(run)
    for review in reviews:
        arm = arms.get(review.version_id)
        if arm is not None:
            arm.reviews.append(review)
    baseline, candidate = arms[baseline_version_id], arms[candidate_version_id]
    corrected = guard.alpha / max(len(guard.guarded), 1)
    figures = tuple(
        _compare_figure(figure, baseline, candidate, guard, corrected) for figure in FIGURES
    )
    return Comparison(
        figures=figures,
        baseline_runs=len(baseline.settled),
        candidate_runs=len(candidate.settled),
        min_samples=guard.min_samples,
        alpha=guard.alpha,
        corrected_alpha=corrected,
    )


@dataclass
class _Arm:
    settled: list[RunObservation] = field(default_factory=list)
    reviews: list[ReviewObservation] = field(default_factory=list)

    def add_run(self, run: RunObservation) -> None:
        if run.settled:
            self.settled.append(run)

    @property
    def ended(self) -> list[RunObservation]:
        return [run for run in self.settled if run.status.is_terminal]

    def flags(self, key: str) -> list[bool]:
        """The arm's binary observations for a rate figure (True: the bad outcome)."""
        flag: Callable[[Any], bool]
        if key == "completion_rate":
            return [run.status is not RunStatus.SUCCEEDED for run in self.ended]
        if key in {"override_rate", "edit_rate"}:
            wanted = ReviewStatus.OVERRIDDEN if key == "override_rate" else ReviewStatus.EDITED
            return [review.status is wanted for review in self.reviews]
        flag = {
            "escalation_rate": lambda run: run.escalated,
            "deny_rate": lambda run: run.denied,
            "tool_error_rate": lambda run: run.tool_error,
        }[key]
        return [flag(run) for run in self.settled]

    def values(self, key: str) -> list[float]:
        """The arm's measurements for a continuous figure."""
        if key == "cost_per_task":
            return [run.cost_usd for run in self.ended]
        return [run.agent_time_ms for run in self.ended]


def _compare_figure(
    figure: Figure, baseline: _Arm, candidate: _Arm, guard: CanaryGuard, alpha: float
) -> FigureComparison:
    threshold = guard.thresholds.get(figure.key)
    if figure.key in {"cost_per_task", "latency_p95"}:
        b_values, c_values = baseline.values(figure.key), candidate.values(figure.key)
        b_stat, c_stat = _statistic(figure.key, b_values), _statistic(figure.key, c_values)
        b_n, c_n = len(b_values), len(c_values)
        p_value = _mann_whitney(c_values, b_values)
    else:
        b_flags, c_flags = baseline.flags(figure.key), candidate.flags(figure.key)
        b_n, c_n = len(b_flags), len(c_flags)
        b_stat = _good_rate(figure, b_flags)
        c_stat = _good_rate(figure, c_flags)
        p_value = _fisher(c_flags, b_flags)
    if threshold is None:
        state = "not guarded"
    elif min(b_n, c_n) < guard.min_samples:
        state = "collecting"
    elif _worse_by_more(figure, b_stat, c_stat, threshold) and p_value is not None:
        state = "breach" if p_value < alpha else "ok"
    else:
        state = "ok"
    return FigureComparison(
        key=figure.key,
        label=figure.label,
        baseline=b_stat,
        candidate=c_stat,
        baseline_n=b_n,
        candidate_n=c_n,
        threshold=threshold,
        threshold_text=figure.threshold_text(threshold) if threshold is not None else "off",
        p_value=p_value,
        state=state,
    )


def _good_rate(figure: Figure, bad: list[bool]) -> float | None:
    """The figure's rate as people read it (completion counts successes, the others the bad
    outcome); None without observations."""
    if not bad:
        return None
    share_bad = sum(bad) / len(bad)
    return share_bad if figure.higher_is_worse else 1.0 - share_bad


def _statistic(key: str, values: list[float]) -> float | None:
    if not values:
        return None
    if key == "cost_per_task":
        return float(np.mean(values))
    return float(np.percentile(values, 95))


def _worse_by_more(
    figure: Figure, baseline: float | None, candidate: float | None, threshold: float
) -> bool:
    if baseline is None or candidate is None:
        return False
    if figure.relative:
        if baseline == 0:
            return candidate > 0
        return candidate > baseline * (1 + threshold)
    delta = candidate - baseline if figure.higher_is_worse else baseline - candidate
    return delta > threshold + 1e-12


def _fisher(candidate_bad: list[bool], baseline_bad: list[bool]) -> float | None:
    """One-sided Fisher's exact test: does the candidate show the bad outcome more often?"""
    from scipy.stats import fisher_exact  # a second of imports: only when a guard is checked

    if not candidate_bad or not baseline_bad:
        return None
    table = np.array(
        [
            [sum(candidate_bad), len(candidate_bad) - sum(candidate_bad)],
            [sum(baseline_bad), len(baseline_bad) - sum(baseline_bad)],
        ]
    )
    return float(fisher_exact(table, alternative="greater").pvalue)


def _mann_whitney(candidate: list[float], baseline: list[float]) -> float | None:
    """One-sided Mann-Whitney U: are the candidate's measurements stochastically larger?"""
    from scipy.stats import mannwhitneyu

    if not candidate or not baseline:
        return None
    if len(set(candidate) | set(baseline)) == 1:
        return 1.0  # every measurement equal: no difference to test
    return float(mannwhitneyu(candidate, baseline, alternative="greater").pvalue)


def _show(key: str, value: float | None) -> str:
    if value is None:
        return "—"
    if key == "cost_per_task":
        return f"${value:.4f}"
    if key == "latency_p95":
        return f"{value:.0f} ms"
    return f"{value:.0%}"


def _threshold(figure: Figure, value: Any) -> float:
    number = _number(value, f"the threshold of {figure.key}")
    upper = 10.0 if figure.relative else 1.0
    if not 0 <= number <= upper:
        kind = "a relative increase" if figure.relative else "a share"
        raise InvalidInput(
            f"the threshold of {figure.key} is {kind} from 0 to {upper:g}, not {value!r}."
        )
    return number


def _min_samples(value: Any) -> int:
    number = _number(value, "min_samples")
    if number != int(number) or not 5 <= number <= 100_000:
        raise InvalidInput(f"min_samples is a whole number from 5 to 100000, not {value!r}.")
    return int(number)


def _alpha(value: Any) -> float:
    number = _number(value, "alpha")
    if not 0 < number <= 0.2:
        raise InvalidInput(f"alpha is a significance level above 0 and at most 0.2, not {value!r}.")
    return number


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a number, not {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be a number, not {value!r}.") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{what} must be a finite number, not {value!r}.")
    return number
