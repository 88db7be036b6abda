"""The KPIs of DESIGN.md for a time range, agent and version, computed with SQL and pandas.

Each section is a plain dict (or a DataFrame for tables), so the CLI can print JSON and the
console can chart it without recomputing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.enums import RunStatus, StepKind
from storage.models import (
    Agent,
    AgentVersion,
    CircuitBreaker,
    Review,
    ReviewDecision,
    Run,
    Step,
    ToolCall,
)

FINISHED = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ESCALATED]


@dataclass(frozen=True)
class KpiFilter:
    since: datetime | None = None
    until: datetime | None = None
    agent: str | None = None
    version: int | None = None


@dataclass
class KpiReport:
    runs: dict[str, Any] = field(default_factory=dict)
    reviews: dict[str, Any] = field(default_factory=dict)
    tools: pd.DataFrame = field(default_factory=pd.DataFrame)
    errors: dict[str, int] = field(default_factory=dict)
    policy: pd.DataFrame = field(default_factory=pd.DataFrame)
    latency: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "reviews": self.reviews,
            "latency": self.latency,
            "errors": self.errors,
            "tools": self.tools.to_dict(orient="records"),
            "policy": self.policy.to_dict(orient="records"),
        }


def _run_ids(flt: KpiFilter) -> Any:
    query = sa.select(col(Run.id))
    if flt.agent:
        query = query.join(Agent, col(Agent.id) == col(Run.agent_id)).where(
            col(Agent.name) == flt.agent
        )
    if flt.version is not None:
        query = query.join(AgentVersion, col(AgentVersion.id) == col(Run.version_id)).where(
            col(AgentVersion.number) == flt.version
        )
    if flt.since is not None:
        query = query.where(col(Run.created_at) >= flt.since)
    if flt.until is not None:
        query = query.where(col(Run.created_at) < flt.until)
    return query


def _frame(session: Session, query: Any) -> pd.DataFrame:
    result = session.execute(query)
    return pd.DataFrame(result.all(), columns=list(result.keys()))


def _pct(series: pd.Series, q: float) -> float | None:
    return None if series.empty else round(float(series.quantile(q)), 1)


def _rate(part: float, whole: float) -> float | None:
    return None if not whole else round(part / whole, 4)


def compute_kpis(flt: KpiFilter, *, session: Session) -> KpiReport:
    runs_q = _run_ids(flt).subquery()
    runs = _frame(
        session,
        sa.select(
            col(Run.id),
            col(Run.status),
            col(Run.error_class),
            col(Run.agent_time_ms),
            col(Run.tokens_in),
            col(Run.tokens_out),
            col(Run.cost_usd),
        ).where(col(Run.id).in_(sa.select(runs_q.c.id))),
    )
    reviews = _frame(
        session,
        sa.select(
            col(Review.id),
            col(Review.run_id),
            col(Review.status),
            col(Review.created_at),
            col(Review.decided_at),
            col(Review.sla_due_at),
        ).where(col(Review.run_id).in_(sa.select(runs_q.c.id))),
    )
    report = KpiReport()
    finished = runs[runs["status"].isin(FINISHED)] if not runs.empty else runs
    reviewed_runs = set(reviews["run_id"]) if not reviews.empty else set()
    succeeded = finished[finished["status"] == RunStatus.SUCCEEDED] if not runs.empty else runs
    autonomous = succeeded[~succeeded["id"].isin(reviewed_runs)] if not runs.empty else runs
    report.runs = {
        "total": len(runs),
        "finished": len(finished),
        "succeeded": len(succeeded),
        "completion_rate": _rate(len(succeeded), len(finished)),
        "autonomous_resolution_rate": _rate(len(autonomous), len(finished)),
        "escalation_rate": _rate(
            len(reviewed_runs & set(runs["id"])) if not runs.empty else 0, len(runs)
        ),
        "by_status": runs["status"].astype(str).value_counts().to_dict() if not runs.empty else {},
        "tokens_per_run": round(float((runs["tokens_in"] + runs["tokens_out"]).mean()), 1)
        if not runs.empty
        else None,
        "cost_per_run_usd": round(float(runs["cost_usd"].mean()), 6) if not runs.empty else None,
    }
    report.latency = {
        "run_ms": {
            "p50": _pct(finished["agent_time_ms"], 0.5) if not runs.empty else None,
            "p95": _pct(finished["agent_time_ms"], 0.95) if not runs.empty else None,
            "p99": _pct(finished["agent_time_ms"], 0.99) if not runs.empty else None,
        },
    }
    report.reviews = _review_kpis(session, reviews)
    report.tools, tool_latency = _tool_kpis(session, runs_q)
    report.latency["tool_ms"] = tool_latency
    report.errors = _error_kpis(session, runs_q)
    report.policy = _policy_kpis(session, runs_q)
    return report


def _review_kpis(session: Session, reviews: pd.DataFrame) -> dict[str, Any]:
    if reviews.empty:
        return {"total": 0, "open": 0}
    decisions = _frame(
        session,
        sa.select(col(ReviewDecision.review_id), col(ReviewDecision.decision)).where(
            col(ReviewDecision.review_id).in_(reviews["id"].tolist())
        ),
    )
    decided = reviews.dropna(subset=["decided_at"])
    waits = (
        pd.to_datetime(decided["decided_at"], utc=True)
        - pd.to_datetime(decided["created_at"], utc=True)
    ).dt.total_seconds()
    on_time = (
        pd.to_datetime(decided["decided_at"], utc=True)
        <= pd.to_datetime(decided["sla_due_at"], utc=True)
    ).sum()
    counts = (
        decisions["decision"].astype(str).value_counts()
        if not decisions.empty
        else pd.Series(dtype=int)
    )
    total = int(counts.sum())
    return {
        "total": len(reviews),
        "open": int(reviews["decided_at"].isna().sum()),
        "decisions": {k: int(v) for k, v in counts.items()},
        "decision_rates": {k: _rate(int(v), total) for k, v in counts.items()},
        "time_to_decision_s": {"p50": _pct(waits, 0.5), "p95": _pct(waits, 0.95)},
        "sla_compliance": _rate(int(on_time), len(decided)),
    }


def _tool_kpis(session: Session, runs_q: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    calls = _frame(
        session,
        sa.select(
            col(ToolCall.tool),
            col(ToolCall.status),
            col(ToolCall.attempts),
            col(ToolCall.duration_ms),
        ).where(col(ToolCall.run_id).in_(sa.select(runs_q.c.id))),
    )
    breakers = {b.tool: b.opened_count for b in session.exec(select(CircuitBreaker)).all()}
    if calls.empty:
        return pd.DataFrame(
            columns=[
                "tool",
                "calls",
                "success_rate",
                "first_attempt_success_rate",
                "p50_ms",
                "p95_ms",
                "circuit_openings",
            ]
        ), {}
    calls["ok"] = calls["status"].astype(str) == "succeeded"
    calls["first_ok"] = calls["ok"] & (calls["attempts"] <= 1)
    table = (
        calls.groupby("tool")
        .agg(
            calls=("ok", "size"),
            success_rate=("ok", "mean"),
            first_attempt_success_rate=("first_ok", "mean"),
            p50_ms=("duration_ms", lambda s: s.quantile(0.5)),
            p95_ms=("duration_ms", lambda s: s.quantile(0.95)),
        )
        .reset_index()
    )
    table["circuit_openings"] = table["tool"].map(breakers).fillna(0).astype(int)
    table = table.round(4)
    durations = calls["duration_ms"].dropna()
    return table, {
        "p50": _pct(durations, 0.5),
        "p95": _pct(durations, 0.95),
        "p99": _pct(durations, 0.99),
    }


def _error_kpis(session: Session, runs_q: Any) -> dict[str, int]:
    rows = session.execute(
        sa.select(col(Step.error_class), sa.func.count())
        .where(col(Step.run_id).in_(sa.select(runs_q.c.id)))
        .where(col(Step.error_class).is_not(None))
        .where(
            col(Step.kind).in_(
                [
                    StepKind.APPLY_GUARDRAIL,
                    StepKind.OBSERVATION,
                    StepKind.PROPOSAL,
                    StepKind.FINAL_OUTPUT,
                    StepKind.HUMAN_APPROVAL,
                ]
            )
        )
        .group_by(col(Step.error_class))
    ).all()
    return {str(getattr(k, "value", k)): int(n) for k, n in rows}


def _policy_kpis(session: Session, runs_q: Any) -> pd.DataFrame:
    steps = _frame(
        session,
        sa.select(col(Step.attributes))
        .where(col(Step.run_id).in_(sa.select(runs_q.c.id)))
        .where(col(Step.kind) == StepKind.APPLY_GUARDRAIL),
    )
    if steps.empty:
        return pd.DataFrame(columns=["rule_id", "effect", "count"])
    attrs = pd.json_normalize(steps["attributes"].tolist())
    attrs = attrs.reindex(columns=["rule_id", "effect"]).fillna("-")
    return (
        attrs.value_counts()
        .rename("count")
        .reset_index()
        .sort_values(["count", "rule_id"], ascending=[False, True], ignore_index=True)
    )
