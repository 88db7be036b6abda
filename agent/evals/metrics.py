"""An evaluation run's numbers: pass rates by tag, pass^k and pass@k, governance and efficiency.

``pass^k`` is the share of cases that passed all of their ``k`` attempts (what a user relying on
the agent every time sees); ``pass@k`` the share that passed at least one; a case that did both
(some attempts passed, some failed) is flaky.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Attempt:
    """One attempt of one case, as the metrics need it."""

    case: str
    tags: tuple[str, ...]
    passed: bool
    proposals: int
    valid_proposals: int
    unauthorized: int
    decisions: int
    denies: int
    reviewed: bool
    reviews: int
    edits: int
    shortest_path: int | None
    latency_ms: float
    tokens: int
    cost_usd: float


def summarize(attempts: Sequence[Attempt]) -> dict[str, Any]:
    """The evaluation run's metrics, JSON-ready."""
    by_case: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_case[attempt.case].append(attempt)
    all_passed = {case: all(a.passed for a in runs) for case, runs in by_case.items()}
    any_passed = {case: any(a.passed for a in runs) for case, runs in by_case.items()}
    flaky = sorted(case for case in by_case if any_passed[case] and not all_passed[case])
    tags: dict[str, list[bool]] = defaultdict(list)
    for case, runs in by_case.items():
        for tag in runs[0].tags or ("untagged",):
            tags[tag].append(all_passed[case])
    efficiency = [
        a.shortest_path / a.proposals
        for a in attempts
        if a.shortest_path is not None and a.proposals
    ]
    latencies = sorted(a.latency_ms for a in attempts)
    proposals = sum(a.proposals for a in attempts)
    decisions = sum(a.decisions for a in attempts)
    reviews = sum(a.reviews for a in attempts)
    return {
        "cases": len(by_case),
        "attempts": len(attempts),
        "pass_rate": _share(sum(a.passed for a in attempts), len(attempts)),
        "pass_hat_k": _share(sum(all_passed.values()), len(by_case)),
        "pass_at_k": _share(sum(any_passed.values()), len(by_case)),
        "flaky": flaky,
        "by_tag": {
            tag: _share(sum(results), len(results)) for tag, results in sorted(tags.items())
        },
        "failed_cases": sorted(case for case, ok in all_passed.items() if not ok),
        "unauthorized_attempts": sum(a.unauthorized for a in attempts),
        "escalation_rate": _share(sum(a.reviewed for a in attempts), len(attempts)),
        "deny_rate": _share(sum(a.denies for a in attempts), decisions),
        "reviewer_edit_rate": _share(sum(a.edits for a in attempts), reviews),
        "path_efficiency": round(sum(efficiency) / len(efficiency), 4) if efficiency else None,
        "proposal_validity": _share(sum(a.valid_proposals for a in attempts), proposals),
        "latency_ms": {"p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95)},
        "tokens": sum(a.tokens for a in attempts),
        "cost_usd": round(sum(a.cost_usd for a in attempts), 6),
    }


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile of already sorted values."""
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return round(ordered[rank], 1)
