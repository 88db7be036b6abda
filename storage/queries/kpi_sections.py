"""The KPI sections, one aggregate query (or a few) each, over a scope of runs and reviews.

``storage.queries.kpis`` assembles them into a report. Every function here returns figures the
database computed: counts and sums by ``GROUP BY``, percentiles from value histograms (see
``storage.queries.stats``), never rows fetched to be summarized in Python. Tool health is in
``storage.queries.kpi_tools`` and the coherence proxies in ``storage.queries.coherence``; the
scope here is production's, so no section counts an evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from storage.enums import ErrorClass, ReviewStatus, RunStatus, StepKind
from storage.models import (
    Agent,
    AgentVersion,
    Review,
    ReviewDecision,
    Run,
    Step,
)
from storage.queries.production import (
    is_production_run,
    of_production_run,
)
from storage.queries.stats import (
    Grain,
    count_where,
    dialect_of,
    parse_bucket,
    percentiles,
    seconds_between,
    time_bucket,
)

FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ESCALATED)
# Decided by a person; ``expired`` is the SLA clock deciding, which is what compliance measures.
DECIDED_BY_PEOPLE = (
    ReviewStatus.APPROVED,
    ReviewStatus.EDITED,
    ReviewStatus.REJECTED,
    ReviewStatus.OVERRIDDEN,
)
ERROR_STEP_KINDS = (
    StepKind.APPLY_GUARDRAIL,
    StepKind.OBSERVATION,
    StepKind.PROPOSAL,
    StepKind.FINAL_OUTPUT,
    StepKind.HUMAN_APPROVAL,
)
TREND_COLUMNS = [
    "period",
    "runs",
    "finished",
    "succeeded",
    "completion_rate",
    "escalation_rate",
    "mean_agent_ms",
    "reviews",
    "sla_compliance",
]


@dataclass(frozen=True)
class Scope:
    """A KPI filter as conditions on ``runs`` and on ``reviews``, names resolved to ids.

    Production work only: the conditions always leave evaluation runs, and their reviews,
    steps and ledger rows, out (``storage.queries.production``).
    """

    runs: tuple[ColumnElement[bool], ...]
    reviews: tuple[ColumnElement[bool], ...]
    # Whether ``runs`` narrows beyond "production": an agent, version or time range.
    narrowed: bool = True
    # The versions the filter names (None: every version).
    version_ids: frozenset[int] | None = None

    @classmethod
    def of(
        cls,
        *,
        session: Session,
        since: datetime | None,
        until: datetime | None,
        agent: str | None,
        version: int | None,
    ) -> Scope | None:
        """The scope of production runs and reviews created in ``[since, until)`` of an agent
        and version.

        Returns:
            None when the agent or version does not exist (nothing can match).
        """
        runs: list[ColumnElement[bool]] = []
        reviews: list[ColumnElement[bool]] = []
        version_ids: frozenset[int] | None = None
        if agent:
            agent_id = session.exec(select(Agent.id).where(col(Agent.name) == agent)).first()
            if agent_id is None:
                return None
            runs.append(col(Run.agent_id) == agent_id)
            reviews.append(col(Review.agent_id) == agent_id)
        if version is not None:
            versions = select(AgentVersion.id).where(col(AgentVersion.number) == version)
            if agent:
                versions = versions.where(col(AgentVersion.agent_id) == agent_id)
            ids = list(session.exec(versions).all())
            if not ids:
                return None
            version_ids = frozenset(int(i) for i in ids if i is not None)
            runs.append(col(Run.version_id).in_(ids))
            reviews.append(col(Review.version_id).in_(ids))
        if since is not None:
            runs.append(col(Run.created_at) >= since)
            reviews.append(col(Review.created_at) >= since)
        if until is not None:
            runs.append(col(Run.created_at) < until)
            reviews.append(col(Review.created_at) < until)
        narrowed = bool(runs)
        runs.append(is_production_run())
        reviews.append(of_production_run(Review.run_id))
        return cls(tuple(runs), tuple(reviews), narrowed, version_ids)

    def run_ids(self, column: Any) -> tuple[ColumnElement[bool], ...]:
        """A condition restricting ``column`` (a run id) to the runs in scope."""
        if not self.narrowed:
            # Every production run: excluding the evaluations' few ids is cheaper than
            # listing every other run's.
            return (of_production_run(column),)
        return (col(column).in_(sa.select(col(Run.id)).where(*self.runs)),)


def run_kpis(scope: Scope, *, session: Session) -> dict[str, Any]:
    """Completion, autonomous resolution and escalation rates, counts by status and failure
    class, tokens and cost per run."""
    # One pass gives the counts by status and by outcome: the answer's resolution is read only
    # for succeeded runs (a success may be a decline; other statuses say what they are).
    resolution = sa.case(
        (col(Run.status) == RunStatus.SUCCEEDED, col(Run.output)["resolution"].as_string()),
        else_=None,
    )
    by_outcome = session.execute(
        sa.select(
            col(Run.status),
            sa.func.count(),
            sa.func.sum(col(Run.tokens_in) + col(Run.tokens_out)),
            sa.func.sum(col(Run.cost_usd)),
            resolution,
        )
        .where(*scope.runs)
        .group_by(col(Run.status), resolution)
    ).all()
    by_status = _per_status(by_outcome)
    reviewed = session.execute(
        sa.select(col(Run.status), sa.func.count(sa.distinct(col(Review.run_id))))
        .join(Run, col(Run.id) == col(Review.run_id))
        .where(*scope.runs)
        .group_by(col(Run.status))
    ).all()
    failures = session.execute(
        sa.select(col(Run.error_class), sa.func.count())
        .where(*scope.runs, col(Run.error_class).is_not(None))
        .group_by(col(Run.error_class))
    ).all()
    summary = run_summary(by_status, reviewed, failures)
    summary["by_outcome"] = outcome_counts([(row[0], row[4], row[1]) for row in by_outcome])
    return summary


def _per_status(rows: Sequence[Any]) -> list[tuple[Any, int, int, float]]:
    """(status, runs, tokens, cost) per status, from rows split further by resolution."""
    totals: dict[Any, list[float]] = {}
    for status, n, tokens, cost, _resolution in rows:
        total = totals.setdefault(status, [0, 0, 0.0])
        total[0] += int(n)
        total[1] += int(tokens or 0)
        total[2] += float(cost or 0.0)
    return [(status, int(n), int(tokens), cost) for status, (n, tokens, cost) in totals.items()]


def outcome_counts(rows: Sequence[Any]) -> dict[str, int]:
    """Runs per outcome from (status, resolution, runs) rows: the status and, for a run that
    succeeded, the answer's resolution (``succeeded · declined`` ended well by declining: no
    refund was made)."""
    counts: dict[str, int] = {}
    for status, resolution, n in rows:
        name = RunStatus(status).value + (f" · {resolution}" if resolution else "")
        counts[name] = counts.get(name, 0) + int(n)
    return dict(sorted(counts.items()))


def run_summary(
    by_status: Sequence[Any], reviewed: Sequence[Any], failures: Sequence[Any]
) -> dict[str, Any]:
    """The run figures from grouped rows (all empty: the figures of no runs at all).

    Args:
        by_status: (status, runs, tokens, cost) per run status.
        reviewed: (status, runs with at least one review) per run status.
        failures: (error class, runs) per error class of failed or escalated runs.
    """
    counts = {RunStatus(status): int(n) for status, n, *_ in by_status}
    total = sum(counts.values())
    finished = sum(counts.get(status, 0) for status in FINISHED)
    succeeded = counts.get(RunStatus.SUCCEEDED, 0)
    reviewed_by_status = {RunStatus(status): int(n) for status, n in reviewed}
    tokens = sum(int(row[2] or 0) for row in by_status)
    cost = sum(float(row[3] or 0.0) for row in by_status)
    return {
        "total": total,
        "finished": finished,
        "succeeded": succeeded,
        "completion_rate": rate(succeeded, finished),
        "autonomous_resolution_rate": rate(
            succeeded - reviewed_by_status.get(RunStatus.SUCCEEDED, 0), finished
        ),
        "escalation_rate": rate(sum(reviewed_by_status.values()), total),
        "by_status": {status.value: n for status, n in sorted(counts.items())},
        "by_outcome": {},
        "failures_by_error_class": {
            str(getattr(cls, "value", cls)): int(n)
            for cls, n in sorted(failures, key=lambda row: str(row[0]))
        },
        "tokens_per_run": round(tokens / total, 1) if total else None,
        "cost_per_run_usd": round(cost / total, 6) if total else None,
    }


def run_latency(scope: Scope, *, session: Session) -> dict[str, float | None]:
    """p50, p95 and p99 of finished runs' agent time in ms (human wait excluded)."""
    found = percentiles(
        sa.select(col(Run.agent_time_ms).label("value")).where(
            *scope.runs, col(Run.status).in_(FINISHED)
        ),
        (0.5, 0.95, 0.99),
        session=session,
    ).get(None, {})
    return {f"p{round(q * 100)}": round_or_none(found.get(q)) for q in (0.5, 0.95, 0.99)}


def _review_conditions(dialect: str, now: datetime) -> dict[str, ColumnElement[Any]]:
    """SLA bookkeeping as SQL expressions over ``reviews``."""
    has_sla = col(Review.sla_due_at).is_not(None)
    return {
        # A review's SLA outcome is known once it was decided or expired, or is overdue.
        "sla_known": sa.and_(
            has_sla,
            sa.or_(
                col(Review.status).not_in(ReviewStatus.open_statuses()),
                col(Review.sla_due_at) < now,
            ),
        ),
        "on_time": sa.and_(
            has_sla,
            col(Review.status).in_(DECIDED_BY_PEOPLE),
            col(Review.decided_at) <= col(Review.sla_due_at),
        ),
        "wait_s": seconds_between(col(Review.decided_at), col(Review.created_at), dialect),
    }


def review_kpis(scope: Scope, *, session: Session, now: datetime) -> dict[str, Any]:
    """Reviews raised, still open, decisions and their rates, time to decision, SLA compliance.

    SLA compliance is the share of reviews with an SLA whose outcome is known (decided,
    expired, or still open past the due time at ``now``) that a person decided in time.
    """
    expr = _review_conditions(dialect_of(session), now)
    by_status = {
        ReviewStatus(status): int(n)
        for status, n in session.execute(
            sa.select(col(Review.status), sa.func.count())
            .where(*scope.reviews)
            .group_by(col(Review.status))
        ).all()
    }
    sla = session.execute(
        sa.select(count_where(expr["on_time"]), count_where(expr["sla_known"])).where(
            *scope.reviews
        )
    ).one()
    decisions = {
        str(getattr(kind, "value", kind)): int(n)
        for kind, n in session.execute(
            sa.select(col(ReviewDecision.decision), sa.func.count())
            .join(Review, col(Review.id) == col(ReviewDecision.review_id))
            .where(*scope.reviews)
            .group_by(col(ReviewDecision.decision))
        ).all()
    }
    waits = percentiles(
        sa.select(expr["wait_s"].label("value")).where(
            *scope.reviews, col(Review.status).in_(DECIDED_BY_PEOPLE)
        ),
        (0.5, 0.95),
        session=session,
    ).get(None, {})
    decided = sum(decisions.values())
    return {
        "total": sum(by_status.values()),
        "open": sum(by_status.get(status, 0) for status in ReviewStatus.open_statuses()),
        "by_status": {status.value: n for status, n in sorted(by_status.items())},
        "decisions": decisions,
        "decision_rates": {kind: rate(n, decided) for kind, n in decisions.items()},
        "time_to_decision_s": {
            "p50": round_or_none(waits.get(0.5)),
            "p95": round_or_none(waits.get(0.95)),
        },
        "sla_compliance": rate(int(sla[0]), int(sla[1])),
        "sla_reviews": int(sla[1]),
    }


def error_kpis(scope: Scope, *, session: Session) -> dict[str, int]:
    """Trace steps by error class, most frequent first (tool attempts are counted once, by
    the observation that reports their outcome)."""
    rows = session.execute(
        sa.select(col(Step.error_class), sa.func.count())
        .where(
            # Equality on every class rather than IS NOT NULL: it lets SQLite walk the
            # (error_class, kind, run_id) index instead of scanning every step.
            col(Step.error_class).in_(list(ErrorClass)),
            col(Step.kind).in_(ERROR_STEP_KINDS),
            *scope.run_ids(Step.run_id),
        )
        .group_by(col(Step.error_class))
    ).all()
    return {
        str(getattr(cls, "value", cls)): int(n)
        for cls, n in sorted(rows, key=lambda row: -int(row[1]))
    }


@dataclass(frozen=True)
class GateCount:
    """How many ``apply_guardrail`` steps of one version's runs decided alike."""

    version_id: int
    rule_id: str
    effect: str
    stage: str
    # The re-check of a call a person approved (not a new proposal).
    authorized: bool
    count: int


def gate_decisions(scope: Scope, *, session: Session) -> list[GateCount]:
    """The gate's decisions in scope, counted by version, rule, effect, stage and whether they
    re-checked an approved call."""
    # A guardrail step's attributes are exactly its rule, effect, stage and authorization, so
    # grouping by the stored text yields a handful of groups; parsing them here is much cheaper
    # than extracting JSON fields from every row in SQL. (PostgreSQL's json type has no
    # equality: cast.)
    attributes = sa.cast(col(Step.attributes), sa.Text)
    rows = session.execute(
        sa.select(col(Run.version_id), attributes, sa.func.count())
        .join(Run, col(Run.id) == col(Step.run_id))
        .where(col(Step.kind) == StepKind.APPLY_GUARDRAIL, *scope.runs)
        .group_by(col(Run.version_id), attributes)
    ).all()
    counts: dict[tuple[int, str, str, str, bool], int] = {}
    for version_id, text, n in rows:
        decoded = json.loads(text) if text else {}
        values = decoded if isinstance(decoded, dict) else {}
        rule, effect, stage = (str(values.get(k) or "-") for k in ("rule_id", "effect", "stage"))
        key = (int(version_id), rule, effect, stage, bool(values.get("authorized")))
        counts[key] = counts.get(key, 0) + int(n)
    return [GateCount(*key, n) for key, n in sorted(counts.items())]


def policy_kpis(decisions: Sequence[GateCount]) -> pd.DataFrame:
    """Gate decisions per rule and effect, most frequent first."""
    by_rule: dict[tuple[str, str], int] = {}
    for d in decisions:
        by_rule[d.rule_id, d.effect] = by_rule.get((d.rule_id, d.effect), 0) + d.count
    # Most frequent first, then by rule id, so the table reads the same on every database.
    return pd.DataFrame(
        [
            (rule, effect, n)
            for (rule, effect), n in sorted(by_rule.items(), key=lambda i: (-i[1], i[0]))
        ],
        columns=["rule_id", "effect", "count"],
    )


def trend(scope: Scope, *, session: Session, grain: Grain, now: datetime) -> pd.DataFrame:
    """Volumes and rates per hour or day (UTC), one row per period with runs or reviews."""
    dialect = dialect_of(session)
    run_bucket = time_bucket(col(Run.created_at), grain, dialect).label("bucket")
    finished = col(Run.status).in_(FINISHED)
    runs = session.execute(
        sa.select(
            run_bucket,
            sa.func.count(),
            count_where(finished),
            count_where(col(Run.status) == RunStatus.SUCCEEDED),
            sa.func.avg(sa.case((finished, col(Run.agent_time_ms)))),
        )
        .where(*scope.runs)
        .group_by(run_bucket)
    ).all()
    reviewed = dict(
        session.execute(
            sa.select(run_bucket, sa.func.count(sa.distinct(col(Review.run_id))))
            .join(Run, col(Run.id) == col(Review.run_id))
            .where(*scope.runs)
            .group_by(run_bucket)
        ).all()
    )
    expr = _review_conditions(dialect, now)
    review_bucket = time_bucket(col(Review.created_at), grain, dialect).label("bucket")
    reviews = {
        bucket: (int(n), int(on_time), int(known))
        for bucket, n, on_time, known in session.execute(
            sa.select(
                review_bucket,
                sa.func.count(),
                count_where(expr["on_time"]),
                count_where(expr["sla_known"]),
            )
            .where(*scope.reviews)
            .group_by(review_bucket)
        ).all()
    }
    # Periods with reviews but no run started (a quiet day after a busy one) still show.
    run_rows = {
        bucket: (int(total), int(done), int(ok), mean) for bucket, total, done, ok, mean in runs
    }
    records = []
    for bucket in sorted(set(run_rows) | set(reviews)):
        total, done, ok, mean_ms = run_rows.get(bucket, (0, 0, 0, None))
        raised, on_time, known = reviews.get(bucket, (0, 0, 0))
        records.append(
            {
                "period": parse_bucket(bucket, grain),
                "runs": total,
                "finished": done,
                "succeeded": ok,
                "completion_rate": rate(ok, done),
                "escalation_rate": rate(int(reviewed.get(bucket, 0)), total),
                "mean_agent_ms": round_or_none(mean_ms),
                "reviews": raised,
                "sla_compliance": rate(on_time, known),
            }
        )
    return pd.DataFrame(records, columns=TREND_COLUMNS).astype(
        {"runs": "int64", "finished": "int64", "succeeded": "int64", "reviews": "int64"}
    )


def rate(part: float, whole: float) -> float | None:
    """``part / whole`` to four places, or None when there is nothing to divide by."""
    return None if not whole else round(part / whole, 4)


def round_or_none(value: float | None) -> float | None:
    """A figure to one decimal, or None when unknown."""
    return None if value is None else round(float(value), 1)
