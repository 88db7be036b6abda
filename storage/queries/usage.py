"""Model usage: tokens, cost and model latency for one run, and per agent and version.

Each proposal step of a chat planner records the model that answered, its token counts, the
cost (priced when the step was recorded) and the model's latency and attempts in
``Step.attributes``; a run carries the totals in ``tokens_in``, ``tokens_out`` and
``cost_usd``. A *model call* here is one planner turn that asked a model (a proposal step with
``model_attempts``), however many HTTP attempts it took. Usage per agent and version counts
production runs only; one run's usage is read for any run, an evaluation's included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.enums import StepKind
from storage.models import Agent, AgentVersion, Run, Step
from storage.queries.production import is_production_run

if TYPE_CHECKING:  # pandas takes most of a second to import; only KPI reads need it
    import pandas as pd

    from storage.queries.kpis import KpiFilter

USAGE_COLUMNS = [
    "agent",
    "version",
    "runs",
    "tokens_in",
    "tokens_out",
    "tokens_per_run",
    "cost_usd",
    "cost_per_run_usd",
    "model_calls",
    "planner_errors",
    "model_latency_p50_ms",
    "model_latency_p95_ms",
]


@dataclass(frozen=True)
class ModelCall:
    """One planner turn that asked a model, as its proposal step recorded it."""

    seq: int
    model: str
    status: str
    error_class: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float | None
    turn_ms: float | None
    attempts: int
    http: list[str]
    finish_reason: str | None


@dataclass(frozen=True)
class RunUsage:
    """A run's token and cost totals and each of its model calls."""

    run_id: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    model_calls: int
    failed_calls: int
    calls: list[ModelCall] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_usage(run_id: int, *, session: Session) -> RunUsage | None:
    """Tokens, cost and model calls of one run; None if the run does not exist.

    ``calls`` lists every proposal step that asked a model, in trace order, with its latency
    (``latency_ms``: the model's answer; ``turn_ms``: the whole turn, retries and waits
    included), HTTP outcomes, tokens and cost.
    """
    run = session.get(Run, run_id)
    if run is None:
        return None
    steps = session.exec(
        select(Step)
        .where(col(Step.run_id) == run_id)
        .where(col(Step.kind) == StepKind.PROPOSAL)
        .order_by(col(Step.seq))
    ).all()
    calls = [
        ModelCall(
            seq=step.seq,
            model=str(step.attributes.get("model") or ""),
            status=step.status.value,
            error_class=step.error_class.value if step.error_class else None,
            prompt_tokens=int(step.attributes.get("prompt_tokens") or 0),
            completion_tokens=int(step.attributes.get("completion_tokens") or 0),
            cost_usd=float(step.attributes.get("cost_usd") or 0.0),
            latency_ms=step.attributes.get("model_latency_ms"),
            turn_ms=step.duration_ms,
            attempts=int(step.attributes["model_attempts"]),
            http=list(step.attributes.get("model_http") or []),
            finish_reason=step.attributes.get("finish_reason"),
        )
        for step in steps
        if "model_attempts" in step.attributes
    ]
    return RunUsage(
        run_id=run_id,
        tokens_in=run.tokens_in,
        tokens_out=run.tokens_out,
        cost_usd=round(run.cost_usd, 6),
        model_calls=len(calls),
        failed_calls=sum(1 for c in calls if c.error_class is not None),
        calls=calls,
    )


def _runs(flt: KpiFilter) -> Any:
    query: Any = (
        sa.select(
            col(Run.id).label("run_id"),
            col(Agent.name).label("agent"),
            col(AgentVersion.number).label("version"),
            col(Run.tokens_in),
            col(Run.tokens_out),
            col(Run.cost_usd),
        )
        .join(Agent, col(Agent.id) == col(Run.agent_id))
        .join(AgentVersion, col(AgentVersion.id) == col(Run.version_id))
        .where(is_production_run())
    )
    if flt.agent:
        query = query.where(col(Agent.name) == flt.agent)
    if flt.version is not None:
        query = query.where(col(AgentVersion.number) == flt.version)
    if flt.since is not None:
        query = query.where(col(Run.created_at) >= flt.since)
    if flt.until is not None:
        query = query.where(col(Run.created_at) < flt.until)
    return query


def _frames(flt: KpiFilter, session: Session) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The filtered runs, and their model calls with latency and outcome."""
    import pandas as pd

    runs_q = _runs(flt)
    result = session.execute(runs_q)
    runs = pd.DataFrame(result.all(), columns=list(result.keys()))
    ids = runs_q.with_only_columns(col(Run.id)).scalar_subquery()
    steps = session.execute(
        sa.select(col(Step.run_id), col(Step.error_class), col(Step.attributes))
        .where(col(Step.run_id).in_(ids))
        .where(col(Step.kind) == StepKind.PROPOSAL)
    ).all()
    calls = pd.DataFrame(
        [
            {
                "run_id": run_id,
                "failed": error_class is not None,
                "latency_ms": attributes.get("model_latency_ms"),
            }
            for run_id, error_class, attributes in steps
            if "model_attempts" in (attributes or {})
        ],
        columns=["run_id", "failed", "latency_ms"],
    )
    return runs, calls


def _pct(series: pd.Series, q: float) -> float | None:
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").dropna()
    return None if values.empty else round(float(values.quantile(q)), 1)


def any_model_usage(flt: KpiFilter, *, session: Session) -> bool:
    """Whether any run in ``flt`` asked a language model (a cheap check before the tables)."""
    return session.execute(_runs(flt).where(col(Run.tokens_in) > 0).limit(1)).first() is not None


def usage_by_version(flt: KpiFilter, *, session: Session) -> pd.DataFrame:
    """Tokens, cost and model calls per agent and version over ``flt``: one row each.

    Columns are ``USAGE_COLUMNS``: runs, token totals and per run, cost total and per run (US
    dollars), model calls, planner errors among them, and model latency p50/p95 in ms.
    """
    import pandas as pd

    runs, calls = _frames(flt, session)
    if runs.empty:
        return pd.DataFrame(columns=USAGE_COLUMNS)
    calls = calls.merge(runs[["run_id", "agent", "version"]], on="run_id")
    rows = []
    for _, group in runs.groupby(["agent", "version"], sort=True):
        agent, version = str(group["agent"].iloc[0]), int(group["version"].iloc[0])
        mine = calls[(calls["agent"] == agent) & (calls["version"] == version)]
        rows.append(
            {
                "agent": agent,
                "version": version,
                "runs": len(group),
                "tokens_in": int(group["tokens_in"].sum()),
                "tokens_out": int(group["tokens_out"].sum()),
                "tokens_per_run": round(
                    float((group["tokens_in"] + group["tokens_out"]).mean()), 1
                ),
                "cost_usd": round(float(group["cost_usd"].sum()), 6),
                "cost_per_run_usd": round(float(group["cost_usd"].mean()), 6),
                "model_calls": len(mine),
                "planner_errors": int(mine["failed"].sum()),
                "model_latency_p50_ms": _pct(mine["latency_ms"], 0.5),
                "model_latency_p95_ms": _pct(mine["latency_ms"], 0.95),
            }
        )
    return pd.DataFrame(rows, columns=USAGE_COLUMNS)


def usage_summary(flt: KpiFilter, *, session: Session) -> dict[str, Any]:
    """The same figures as ``usage_by_version`` over every run ``flt`` selects, as one dict."""
    runs, calls = _frames(flt, session)
    total_runs = len(runs)
    return {
        "runs": total_runs,
        "tokens_in": int(runs["tokens_in"].sum()) if total_runs else 0,
        "tokens_out": int(runs["tokens_out"].sum()) if total_runs else 0,
        "tokens_per_run": round(float((runs["tokens_in"] + runs["tokens_out"]).mean()), 1)
        if total_runs
        else None,
        "cost_usd": round(float(runs["cost_usd"].sum()), 6) if total_runs else 0.0,
        "cost_per_run_usd": round(float(runs["cost_usd"].mean()), 6) if total_runs else None,
        "model_calls": len(calls),
        "planner_errors": int(calls["failed"].sum()) if len(calls) else 0,
        "planner_error_rate": round(float(calls["failed"].mean()), 4) if len(calls) else None,
        "model_latency_ms": {
            "p50": _pct(calls["latency_ms"], 0.5),
            "p95": _pct(calls["latency_ms"], 0.95),
        },
    }
