"""The KPIs of DESIGN.md for a time range, agent and version, aggregated by the database.

Every figure is aggregated in SQL (``storage.queries.kpi_sections``); no query fetches the runs,
steps or tool calls it summarizes, so the report costs the same few queries at a hundred runs or
at a hundred thousand. Run figures (completion, escalation, latency, tools, errors, policy) describe
the runs *started* in the range; review figures (decisions, time to decision, SLA compliance)
describe the reviews *raised* in the range. Sections are plain dicts or small DataFrames, so
the CLI prints JSON and the console charts them without recomputing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlmodel import Session

from storage.queries.coherence import COHERENCE_COLUMNS, coherence_kpis
from storage.queries.kpi_sections import (
    ERROR_STEP_KINDS,
    FINISHED,
    TREND_COLUMNS,
    Scope,
    error_kpis,
    gate_decisions,
    policy_kpis,
    review_kpis,
    run_kpis,
    run_latency,
    run_summary,
    trend,
)
from storage.queries.kpi_tools import TOOL_COLUMNS, tool_kpis
from storage.queries.stats import Grain
from storage.types import utcnow

__all__ = [
    "ERROR_STEP_KINDS",
    "FINISHED",
    "KpiFilter",
    "KpiReport",
    "compare_versions",
    "compute_kpis",
]

# The figures a version comparison sets side by side: (label, section, key, sub-key).
COMPARED: tuple[tuple[str, str, str, str | None], ...] = (
    ("runs", "runs", "total", None),
    ("completion rate", "runs", "completion_rate", None),
    ("autonomous resolution rate", "runs", "autonomous_resolution_rate", None),
    ("escalation rate", "runs", "escalation_rate", None),
    ("run latency p50 (ms)", "latency", "run_ms", "p50"),
    ("run latency p95 (ms)", "latency", "run_ms", "p95"),
    ("run latency p99 (ms)", "latency", "run_ms", "p99"),
    ("tool latency p95 (ms)", "latency", "tool_ms", "p95"),
    ("reviews", "reviews", "total", None),
    ("time to decision p50 (s)", "reviews", "time_to_decision_s", "p50"),
    ("time to decision p95 (s)", "reviews", "time_to_decision_s", "p95"),
    ("SLA compliance", "reviews", "sla_compliance", None),
    ("valid, in-scope proposals", "proposals", "valid_rate", None),
    ("path efficiency", "proposals", "path_efficiency", None),
    ("median tool calls per succeeded run", "proposals", "median_tool_calls", None),
    ("tokens per run", "runs", "tokens_per_run", None),
    ("cost per run (USD)", "runs", "cost_per_run_usd", None),
)


@dataclass(frozen=True)
class KpiFilter:
    """Which work the KPIs describe: created in ``[since, until)``, of an agent and version.

    ``version`` is a version number; without ``agent`` it matches that number of every agent.
    Production work only: an evaluation's runs never count.
    """

    since: datetime | None = None
    until: datetime | None = None
    agent: str | None = None
    version: int | None = None


@dataclass
class KpiReport:
    """The KPIs of one filter, section by section."""

    runs: dict[str, Any] = field(default_factory=dict)
    reviews: dict[str, Any] = field(default_factory=dict)
    tools: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TOOL_COLUMNS))
    errors: dict[str, int] = field(default_factory=dict)
    policy: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["rule_id", "effect", "count"])
    )
    latency: dict[str, Any] = field(default_factory=dict)
    proposals: dict[str, Any] = field(default_factory=dict)
    coherence: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COHERENCE_COLUMNS))
    trend: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TREND_COLUMNS))

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        trend = self.trend.copy()
        if not trend.empty:
            trend["period"] = trend["period"].map(lambda moment: moment.isoformat())
        return {
            "runs": self.runs,
            "reviews": self.reviews,
            "latency": self.latency,
            "errors": self.errors,
            "proposals": self.proposals,
            "tools": self.tools.to_dict(orient="records"),
            "policy": self.policy.to_dict(orient="records"),
            "coherence": self.coherence.to_dict(orient="records"),
            "trend": trend.to_dict(orient="records"),
        }

    def to_frame(self) -> pd.DataFrame:
        """Every figure as one long table (section, item, metric, value), for CSV export."""
        rows: list[tuple[str, str, str, Any]] = []
        for section, values in (
            ("runs", self.runs),
            ("reviews", self.reviews),
            ("latency", self.latency),
            ("proposals", self.proposals),
        ):
            rows.extend((section, item, metric, value) for item, metric, value in _flat(values))
        rows.extend(("errors", name, "count", count) for name, count in self.errors.items())
        for record in self.tools.to_dict(orient="records"):
            rows.extend(
                ("tools", str(record["tool"]), str(k), v) for k, v in record.items() if k != "tool"
            )
        for record in self.policy.to_dict(orient="records"):
            item = f"{record['rule_id']} ({record['effect']})"
            rows.append(("policy", item, "count", record["count"]))
        for record in self.coherence.to_dict(orient="records"):
            item = f"{record['agent']} v{record['version']}"
            rows.extend(
                ("coherence", item, str(k), v)
                for k, v in record.items()
                if k not in {"agent", "version"}
            )
        for record in self.trend.to_dict(orient="records"):
            period = record["period"].isoformat()
            rows.extend(("trend", period, str(k), v) for k, v in record.items() if k != "period")
        return pd.DataFrame(rows, columns=["section", "item", "metric", "value"])


def compute_kpis(
    flt: KpiFilter, *, session: Session, grain: Grain = "day", now: datetime | None = None
) -> KpiReport:
    """The KPIs for ``flt``.

    Args:
        flt: the time range, agent and version.
        session: an open session.
        grain: the width of the trend's periods.
        now: the moment open reviews are judged against their SLA (default: now).

    Returns:
        The report; an unknown agent or version gives an empty one.
    """
    scope = _scope(flt, session=session)
    report = KpiReport()
    if scope is None:
        report.runs = run_summary([], [], [])
        report.reviews = {"total": 0, "open": 0}
        return report
    moment = now or utcnow()
    report.runs = run_kpis(scope, session=session)
    report.latency = {"run_ms": run_latency(scope, session=session)}
    report.reviews = review_kpis(scope, session=session, now=moment)
    report.tools, report.latency["tool_ms"] = tool_kpis(scope, session=session)
    report.errors = error_kpis(scope, session=session)
    decisions = gate_decisions(scope, session=session)
    report.policy = policy_kpis(decisions)
    report.coherence, report.proposals = coherence_kpis(
        decisions, scope, _baseline(flt, session=session), session=session
    )
    report.trend = trend(scope, session=session, grain=grain, now=moment)
    return report


def compare_versions(
    flt: KpiFilter, agent: str, a: int, b: int, *, session: Session, now: datetime | None = None
) -> pd.DataFrame:
    """The headline KPIs of two versions of ``agent`` over ``flt``'s time range, side by side.

    Returns:
        One row per figure, with columns ``metric``, ``v{a}``, ``v{b}`` and ``change``
        (``v{b}`` minus ``v{a}``, where both are known).
    """
    columns: dict[str, list[Any]] = {"metric": [label for label, *_ in COMPARED]}
    for number in (a, b):
        sections = _headline(
            KpiFilter(since=flt.since, until=flt.until, agent=agent, version=number),
            session=session,
            now=now or utcnow(),
        )
        values: list[Any] = []
        for _label, section, key, sub in COMPARED:
            value = sections[section].get(key)
            values.append(value.get(sub) if sub and isinstance(value, dict) else value)
        columns[f"v{number}"] = values
    table = pd.DataFrame(columns)
    before = pd.to_numeric(table[f"v{a}"], errors="coerce")
    after = pd.to_numeric(table[f"v{b}"], errors="coerce")
    table["change"] = (after - before).round(4)
    return table


def _headline(flt: KpiFilter, *, session: Session, now: datetime) -> dict[str, dict[str, Any]]:
    """The sections a comparison reads (no trend, errors or policy table: it is not shown)."""
    scope = _scope(flt, session=session)
    if scope is None:
        return {"runs": run_summary([], [], []), "reviews": {}, "latency": {}, "proposals": {}}
    _tools, tool_ms = tool_kpis(scope, session=session)
    _coherence, proposals = coherence_kpis(
        gate_decisions(scope, session=session),
        scope,
        _baseline(flt, session=session),
        session=session,
    )
    return {
        "runs": run_kpis(scope, session=session),
        "reviews": review_kpis(scope, session=session, now=now),
        "latency": {"run_ms": run_latency(scope, session=session), "tool_ms": tool_ms},
        "proposals": proposals,
    }


def _scope(flt: KpiFilter, *, session: Session) -> Scope | None:
    return Scope.of(
        session=session, since=flt.since, until=flt.until, agent=flt.agent, version=flt.version
    )


def _baseline(flt: KpiFilter, *, session: Session) -> Scope | None:
    """Where the shortest known paths come from: the filter's runs of every version (so
    versions are measured against the same paths); None when that is the filter itself."""
    if flt.version is None:
        return None
    return Scope.of(
        session=session, since=flt.since, until=flt.until, agent=flt.agent, version=None
    )


def _flat(values: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """``{"run_ms": {"p50": 1}}`` -> ``[("run_ms", "p50", 1)]``; scalars get item ``"all"``."""
    out: list[tuple[str, str, Any]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            out.extend((key, str(metric), inner) for metric, inner in value.items())
        else:
            out.append(("all", key, value))
    return out
