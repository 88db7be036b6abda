"""KPIs computed by the database: every figure checked against a small history worked by hand."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.engine import read_session, write_session
from storage.enums import (
    DecisionKind,
    ErrorClass,
    ReviewKind,
    ReviewStatus,
    RunStatus,
    SideEffect,
    StepKind,
    StepStatus,
    ToolCallStatus,
)
from storage.models import (
    Agent,
    AgentVersion,
    CircuitBreaker,
    EvalRun,
    EvalSuite,
    Review,
    ReviewDecision,
    Run,
    Step,
    Task,
    ToolCall,
)
from storage.queries.kpis import KpiFilter, compare_versions, compute_kpis
from storage.queries.stats import percentiles

DAY1 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
DAY2 = datetime(2026, 1, 11, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)


def _history(engine: Engine) -> None:
    """Seven runs of two agents over two days, as the comments below describe."""
    with write_session(engine) as session:
        shop, desk = Agent(name="shop"), Agent(name="desk")
        session.add_all([shop, desk])
        session.flush()
        versions = {}
        for agent, number in ((shop, 1), (shop, 2), (desk, 1)):
            version = AgentVersion(
                agent_id=agent.id or 0,
                number=number,
                content_hash=f"{agent.name}{number}",
                policy_hash="p",
                spec={},
                source_yaml="",
                created_by="t",
            )
            session.add(version)
            session.flush()
            versions[agent.name, number] = version
        session.add(CircuitBreaker(tool="pay", opened_count=2))
        # (agent, version, created, status, error class, agent ms)
        runs = [
            ("shop", 1, DAY1, RunStatus.SUCCEEDED, None, 100.0),  # r1: no review
            ("shop", 1, DAY1 + timedelta(hours=1), RunStatus.SUCCEEDED, None, 200.0),  # r2
            ("shop", 1, DAY1 + timedelta(hours=2), RunStatus.FAILED, ErrorClass.TOOL_ERROR, 300.0),
            ("shop", 1, DAY1 + timedelta(hours=3), RunStatus.WAITING_REVIEW, None, 0.0),  # r4
            ("shop", 2, DAY2, RunStatus.SUCCEEDED, None, 400.0),  # r5
            ("shop", 2, DAY2, RunStatus.ESCALATED, ErrorClass.BUDGET_EXHAUSTED, 500.0),  # r6
            ("desk", 1, DAY2, RunStatus.SUCCEEDED, None, 50.0),  # r7
        ]
        ids = []
        for name, number, created, status, error, ms in runs:
            version = versions[name, number]
            task = Task(agent_id=version.agent_id, input={"q": 1}, submitted_by="t")
            session.add(task)
            session.flush()
            run = Run(
                task_id=task.id or 0,
                agent_id=version.agent_id,
                version_id=version.id or 0,
                status=status,
                error_class=error,
                agent_time_ms=ms,
                tokens_in=10,
                tokens_out=4,
                cost_usd=0.01,
                created_at=created,
            )
            session.add(run)
            session.flush()
            ids.append(run.id or 0)
        r1, r2, r3, r4, r5, r6, _r7 = ids

        def review(run_id: int, status: ReviewStatus, wait_min: int | None, due_min: int) -> int:
            run = session.get(Run, run_id)
            assert run is not None
            row = Review(
                run_id=run_id,
                agent_id=run.agent_id,
                version_id=run.version_id,
                kind=ReviewKind.ESCALATION,
                status=status,
                policy_hash="p",
                sla_due_at=run.created_at + timedelta(minutes=due_min),
                decided_at=run.created_at + timedelta(minutes=wait_min) if wait_min else None,
                created_at=run.created_at,
            )
            session.add(row)
            session.flush()
            return row.id or 0

        approved = review(r2, ReviewStatus.APPROVED, 10, 30)  # decided in 600 s, on time
        review(r4, ReviewStatus.PENDING, None, 60)  # open, overdue by NOW: a missed SLA
        rejected = review(r5, ReviewStatus.REJECTED, 60, 30)  # decided in 3600 s, late
        session.add_all(
            [
                ReviewDecision(review_id=approved, decision=DecisionKind.APPROVE, actor="olga"),
                ReviewDecision(review_id=rejected, decision=DecisionKind.REJECT, actor="olga"),
            ]
        )
        # (run, tool, status, attempts, ms)
        for n, (run_id, tool, status, attempts, ms) in enumerate(
            [
                (r1, "lookup", ToolCallStatus.SUCCEEDED, 1, 10.0),
                (r2, "lookup", ToolCallStatus.SUCCEEDED, 2, 30.0),
                (r3, "pay", ToolCallStatus.FAILED, 3, 50.0),
                (r5, "pay", ToolCallStatus.SUCCEEDED, 1, 20.0),
            ]
        ):
            session.add(
                ToolCall(
                    run_id=run_id,
                    call_id=f"c{n}",
                    tool=tool,
                    idempotency_key=f"k{n}",
                    args={},
                    args_hash="h",
                    side_effect=SideEffect.READ,
                    status=status,
                    attempts=attempts,
                    duration_ms=ms,
                )
            )
        # (run, kind, error class, attributes)
        steps = [
            (r1, StepKind.APPLY_GUARDRAIL, None, _rule("lookups-allowed", "allow", "policy")),
            (r2, StepKind.APPLY_GUARDRAIL, None, _rule("lookups-allowed", "allow", "policy")),
            (r2, StepKind.APPLY_GUARDRAIL, None, _rule("refund-review", "escalate", "policy")),
            (r3, StepKind.APPLY_GUARDRAIL, None, _rule("pay-ok", "allow", "policy")),
            (r3, StepKind.EXECUTE_TOOL, ErrorClass.TOOL_ERROR, {"attempt": 3}),  # not counted
            (r3, StepKind.OBSERVATION, ErrorClass.TOOL_ERROR, {}),
            (r6, StepKind.APPLY_GUARDRAIL, ErrorClass.OUT_OF_SCOPE, _rule(None, "deny", "scope")),
        ]
        for seq, (run_id, kind, error, attributes) in enumerate(steps, start=1):
            session.add(
                Step(
                    run_id=run_id,
                    seq=seq,
                    kind=kind,
                    name="x",
                    status=StepStatus.ERROR if error else StepStatus.OK,
                    error_class=error,
                    attributes=attributes,
                )
            )


def _rule(rule_id: str | None, effect: str, stage: str) -> dict[str, object]:
    return {"rule_id": rule_id, "effect": effect, "stage": stage}


def _kpis(engine: Engine, flt: KpiFilter, **kwargs: object):  # type: ignore[no-untyped-def]
    with read_session(engine) as session:
        return compute_kpis(flt, session=session, now=NOW, **kwargs)  # type: ignore[arg-type]


def test_every_section_over_all_runs(engine: Engine) -> None:
    _history(engine)
    report = _kpis(engine, KpiFilter())

    runs = report.runs
    assert (runs["total"], runs["finished"], runs["succeeded"]) == (7, 6, 4)
    assert runs["completion_rate"] == round(4 / 6, 4)
    assert runs["autonomous_resolution_rate"] == round(2 / 6, 4)  # r1 and r7
    assert runs["escalation_rate"] == round(3 / 7, 4)  # r2, r4, r5 had a review
    assert runs["by_status"] == {
        "escalated": 1,
        "failed": 1,
        "succeeded": 4,
        "waiting_review": 1,
    }
    assert runs["failures_by_error_class"] == {"budget_exhausted": 1, "tool_error": 1}
    assert runs["tokens_per_run"] == 14.0
    # Nearest rank over the finished runs' 50, 100, 200, 300, 400, 500 ms.
    assert report.latency["run_ms"] == {"p50": 200.0, "p95": 500.0, "p99": 500.0}

    reviews = report.reviews
    assert (reviews["total"], reviews["open"]) == (3, 1)
    assert reviews["decisions"] == {"approve": 1, "reject": 1}
    assert reviews["decision_rates"] == {"approve": 0.5, "reject": 0.5}
    assert reviews["time_to_decision_s"] == {"p50": 600.0, "p95": 3600.0}
    # Known outcomes: r2 (on time), r5 (late), r4 (open past its due time).
    assert reviews["sla_compliance"] == round(1 / 3, 4)

    tools = report.tools.set_index("tool")
    assert tools.loc["lookup", "calls"] == 2
    assert tools.loc["lookup", "success_rate"] == 1.0
    assert tools.loc["lookup", "first_attempt_success_rate"] == 0.5
    assert (tools.loc["lookup", "p50_ms"], tools.loc["lookup", "p95_ms"]) == (10.0, 30.0)
    assert tools.loc["pay", "success_rate"] == 0.5
    assert tools.loc["pay", "circuit_openings"] == 2
    assert tools.loc["lookup", "circuit_openings"] == 0
    assert report.latency["tool_ms"] == {"p50": 20.0, "p95": 50.0, "p99": 50.0}

    assert report.errors == {"tool_error": 1, "out_of_scope": 1}
    policy = {(r.rule_id, r.effect): r.count for r in report.policy.itertuples()}
    assert policy == {
        ("lookups-allowed", "allow"): 2,
        ("refund-review", "escalate"): 1,
        ("pay-ok", "allow"): 1,
        ("-", "deny"): 1,
    }
    assert report.policy.iloc[0]["rule_id"] == "lookups-allowed"  # most frequent first
    # No run here has an intent, so no path is measured.
    assert report.proposals == {
        "checked": 5,
        "invalid_or_out_of_scope": 1,
        "valid_rate": 0.8,
        "path_runs": 0,
        "path_efficiency": None,
        "median_tool_calls": None,
    }
    by_version = report.coherence.set_index(["agent", "version"])
    assert by_version.loc[("shop", 1), "proposal_validity"] == 1.0
    assert by_version.loc[("shop", 2), "invalid_or_out_of_scope"] == 1
    assert by_version.loc[("shop", 2), "proposal_validity"] == 0.0


def test_trend_by_day_and_by_hour(engine: Engine) -> None:
    _history(engine)
    days = _kpis(engine, KpiFilter()).trend
    assert [p.date().isoformat() for p in days["period"]] == ["2026-01-10", "2026-01-11"]
    first, second = days.to_dict(orient="records")
    assert (first["runs"], first["finished"], first["succeeded"]) == (4, 3, 2)
    assert first["escalation_rate"] == 0.5
    assert first["mean_agent_ms"] == 200.0
    assert (first["reviews"], first["sla_compliance"]) == (2, 0.5)
    assert (second["runs"], second["reviews"], second["sla_compliance"]) == (3, 1, 0.0)
    assert second["escalation_rate"] == round(1 / 3, 4)

    hours = _kpis(engine, KpiFilter(agent="shop", version=1), grain="hour").trend
    assert list(hours["period"]) == [DAY1 + timedelta(hours=h) for h in range(4)]
    assert list(hours["runs"]) == [1, 1, 1, 1]


def test_filters_by_agent_version_and_time(engine: Engine) -> None:
    _history(engine)
    shop_v1 = _kpis(engine, KpiFilter(agent="shop", version=1))
    assert (shop_v1.runs["total"], shop_v1.runs["completion_rate"]) == (4, round(2 / 3, 4))
    assert shop_v1.reviews["total"] == 2
    assert set(shop_v1.tools["tool"]) == {"lookup", "pay"}
    assert shop_v1.errors == {"tool_error": 1}

    # A version number without an agent means that number of every agent.
    every_v2 = _kpis(engine, KpiFilter(version=2))
    assert every_v2.runs["by_status"] == {"escalated": 1, "succeeded": 1}

    since_day2 = _kpis(engine, KpiFilter(since=DAY2))
    assert since_day2.runs["total"] == 3
    assert since_day2.reviews["decisions"] == {"reject": 1}
    until_day2 = _kpis(engine, KpiFilter(until=DAY2))
    assert until_day2.runs["total"] == 4

    nobody = _kpis(engine, KpiFilter(agent="nobody"))
    assert nobody.runs["total"] == 0
    assert nobody.runs["completion_rate"] is None
    assert nobody.tools.empty
    assert nobody.trend.empty
    assert _kpis(engine, KpiFilter(agent="desk", version=9)).runs["total"] == 0


def test_version_comparison_and_csv_rows(engine: Engine) -> None:
    _history(engine)
    with read_session(engine) as session:
        table = compare_versions(KpiFilter(), "shop", 1, 2, session=session, now=NOW)
    rows = table.set_index("metric")
    assert list(table.columns) == ["metric", "v1", "v2", "change"]
    assert (rows.loc["runs", "v1"], rows.loc["runs", "v2"], rows.loc["runs", "change"]) == (
        4,
        2,
        -2,
    )
    assert rows.loc["completion rate", "v2"] == 0.5

    frame = _kpis(engine, KpiFilter()).to_frame()
    assert list(frame.columns) == ["section", "item", "metric", "value"]
    assert set(frame["section"]) >= {"runs", "reviews", "latency", "tools", "policy", "trend"}
    pay = frame[(frame["section"] == "tools") & (frame["item"] == "pay")]
    assert pay.set_index("metric").loc["calls", "value"] == 2
    p95 = frame[(frame["item"] == "run_ms") & (frame["metric"] == "p95")]
    assert p95["value"].tolist() == [500.0]
    assert _kpis(engine, KpiFilter()).as_dict()["trend"][0]["period"].startswith("2026-01-10")


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.parametrize("count", [1, 2, 7, 100, 1001])
def test_percentiles_match_the_nearest_rank_definition(engine: Engine, count: int) -> None:
    rng = random.Random(count)
    values = [round(rng.lognormvariate(3, 1), 1) for _ in range(count)]
    table = sa.table("numbers", sa.column("value", sa.Float), sa.column("grp", sa.String))
    with Session(engine) as session:
        session.execute(sa.text("CREATE TABLE numbers (value FLOAT, grp VARCHAR(8))"))
        session.execute(
            sa.insert(table),
            [{"value": v, "grp": "odd" if i % 2 else "even"} for i, v in enumerate(values)]
            + [{"value": None, "grp": "even"}],
        )
        quantiles = (0.5, 0.95, 0.99, 1.0)
        overall = percentiles(sa.select(table.c.value), quantiles, session=session)
        grouped = percentiles(sa.select(table.c.grp, table.c.value), quantiles, session=session)
        session.rollback()
    assert overall[None] == {q: _nearest_rank(values, q) for q in quantiles}
    evens = values[::2]
    assert grouped["even"] == {q: _nearest_rank(evens, q) for q in quantiles}


def test_evaluation_runs_count_in_no_section(engine: Engine) -> None:
    _history(engine)
    filters = (
        KpiFilter(),
        KpiFilter(agent="shop"),
        KpiFilter(agent="shop", version=1),
        KpiFilter(since=DAY1, until=NOW),
    )
    before = [_kpis(engine, flt).as_dict() for flt in filters]
    with write_session(engine) as session:
        version = (
            session.exec(
                sa.select(AgentVersion).where(AgentVersion.number == 1).order_by(AgentVersion.id)
            )
            .scalars()
            .first()
        )
        assert version is not None
        suite = EvalSuite(agent_id=version.agent_id, name="core", created_by="t")
        session.add(suite)
        session.flush()
        evaluation = EvalRun(suite_id=suite.id or 0, version_id=version.id or 0, created_by="t")
        session.add(evaluation)
        session.flush()
        for n, tool in enumerate(("lookup", "sandbox_only")):
            task = Task(agent_id=version.agent_id, input={"intent": "refund"}, submitted_by="t")
            session.add(task)
            session.flush()
            run = Run(
                task_id=task.id or 0,
                agent_id=version.agent_id,
                version_id=version.id or 0,
                status=RunStatus.SUCCEEDED,
                eval_run_id=evaluation.id,
                agent_time_ms=9999.0,
                tokens_in=500,
                created_at=DAY2,
            )
            session.add(run)
            session.flush()
            session.add(
                Review(
                    run_id=run.id or 0,
                    agent_id=run.agent_id,
                    version_id=run.version_id,
                    kind=ReviewKind.ESCALATION,
                    status=ReviewStatus.PENDING,
                    policy_hash="p",
                    sla_due_at=DAY2,
                    created_at=DAY2,
                )
            )
            session.add(
                ToolCall(
                    run_id=run.id or 0,
                    call_id=f"e{n}",
                    tool=tool,
                    idempotency_key=f"e{n}",
                    args={},
                    args_hash="h",
                    side_effect=SideEffect.READ,
                    status=ToolCallStatus.FAILED,
                    attempts=3,
                    duration_ms=30.0,  # a duration production's lookups also took
                )
            )
            session.add(
                Step(
                    run_id=run.id or 0,
                    seq=1,
                    kind=StepKind.APPLY_GUARDRAIL,
                    name="x",
                    call_id=f"e{n}",
                    status=StepStatus.ERROR,
                    error_class=ErrorClass.INVALID_ARGUMENTS,
                    attributes=_rule(None, "deny", "arguments"),
                )
            )
    assert [_kpis(engine, flt).as_dict() for flt in filters] == before
