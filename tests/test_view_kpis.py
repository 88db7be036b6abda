"""The KPI view on the seeded demo: figures match what the database holds, filters narrow them,
two versions compare side by side, the CSV button is there, and a broken database is one sentence.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import streamlit as st
from sqlmodel import col, func, select

from agent.versions import activate_version
from storage.engine import read_session, write_session
from storage.enums import EvalRunStatus, StepKind, StepStatus
from storage.models import Agent, AgentVersion, EvalRun, EvalSuite, Review, Run, Step, ToolCall
from storage.queries.kpis import ERROR_STEP_KINDS, FINISHED
from tests.support.console import engine_for
from tests.support.pages import open_page
from tests.support.runtime import ENGINEER, platform_for


def _metrics(at) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {m.label: m.value for m in at.metric}


def _frame(at, first_column: str):  # type: ignore[no-untyped-def]
    """The dataframe whose first column is ``first_column`` (keyed frames are found by content)."""
    return next(df.value for df in at.dataframe if df.value.columns[0] == first_column)


def _runs(url: str, agent: str | None = None) -> tuple[int, int, int]:
    """(runs, finished, runs with a review) as the database holds them."""
    engine = engine_for(url)
    with read_session(engine) as session:
        runs = select(Run.id, Run.status).join(Agent, col(Agent.id) == col(Run.agent_id))
        if agent:
            runs = runs.where(col(Agent.name) == agent)
        rows = session.exec(runs).all()
        reviewed = set(session.exec(select(Review.run_id)).all())
    engine.dispose()
    ids = {run_id for run_id, _ in rows}
    finished = sum(1 for _, status in rows if status in FINISHED)
    return len(rows), finished, len(ids & reviewed)


def _steps(url: str) -> tuple[int, int]:
    """(guardrail decisions, steps counted in the error breakdown) as the database holds them."""
    engine = engine_for(url)
    with read_session(engine) as session:
        guardrails = session.exec(
            select(func.count()).where(col(Step.kind) == StepKind.APPLY_GUARDRAIL)
        ).one()
        errors = session.exec(
            select(func.count()).where(
                col(Step.error_class).is_not(None), col(Step.kind).in_(ERROR_STEP_KINDS)
            )
        ).one()
    engine.dispose()
    return guardrails, errors


def test_headline_figures_match_the_database(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona")
    total, finished, reviewed = _runs(demo_url)
    guardrails, errors = _steps(demo_url)
    metrics = _metrics(at)
    assert metrics["Runs"] == f"{total:,}"
    assert metrics["Escalation rate"] == f"{reviewed / total:.1%}"
    assert not at.error
    # Every section is there, and the export of what is shown.
    engine = engine_for(demo_url)
    with read_session(engine) as session:
        calls = session.exec(select(func.count()).select_from(ToolCall)).one()
    engine.dispose()
    assert _frame(at, "tool")["calls"].sum() == calls
    assert _frame(at, "rule")["decisions"].sum() == guardrails
    assert _frame(at, "error class")["steps"].sum() == errors
    latency = _frame(at, "measure").set_index("measure")
    assert latency.index.tolist() == ["run (agent time)", "tool call", "time to decision"]
    # Units on every figure; a dash that says why where there is nothing to measure (the
    # demo has no decided review yet).
    assert latency.loc["run (agent time)", "p50"].endswith(" ms")
    assert latency.loc["tool call", "p95"].endswith(" ms")
    assert latency.loc["time to decision", "p50"] in ("— (no decision)",) or latency.loc[
        "time to decision", "p50"
    ].endswith(" s")
    tools = _frame(at, "tool")
    assert all(v.endswith("%") for v in tools["success"])
    assert all(v.endswith(" ms") or v.startswith("—") for v in tools["latency p50"])
    assert not any("None" in str(v) or v != v for v in tools.to_numpy().ravel())
    coherence = _frame(at, "agent")
    assert all(v.endswith("%") or v.startswith("— (") for v in coherence["path efficiency"])
    assert at.get("download_button")[0].proto.label.startswith("Download")
    assert finished <= total


def test_outcomes_show_status_with_resolution_so_a_decline_is_not_read_as_a_refund(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(demo_url)
    with read_session(engine) as session:
        runs = session.exec(select(Run.status, Run.output)).all()
    engine.dispose()
    declined = sum(
        1
        for status, out in runs
        if status == "succeeded" and (out or {}).get("resolution") == "declined"
    )
    assert declined > 0, "the demo declines some refunds"
    at = open_page(monkeypatch, demo_url, "kpis.py", user="erin")  # engineers read KPIs too
    outcomes = _frame(at, "outcome").set_index("outcome")
    assert outcomes.loc["succeeded · declined", "runs"] == declined
    assert outcomes["runs"].sum() == len(runs)
    assert outcomes.loc["succeeded · declined", "share"] == f"{declined / len(runs):.1%}"


def test_agent_filter_and_version_comparison(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona")
    at.selectbox(key="kpis.agent").select("support").run()
    total, _succeeded, _reviewed = _runs(demo_url, "support")
    assert _metrics(at)["Runs"] == f"{total:,}"

    at.toggle(key="kpis.compare").set_value(True).run()
    assert not at.exception
    table = _frame(at, "metric").set_index("metric")
    # The demo ran every sample task on version 1; version 2 has not run yet.
    assert list(table.columns) == ["v1", "v2", "change"]
    assert table.loc["runs", "v1"] == total
    assert table.loc["runs", "v2"] == 0

    at.selectbox(key="kpis.version").select("2").run()
    assert _metrics(at)["Runs"] == "0"
    assert "No runs or reviews in this range: widen the time range or choose another agent." in [
        i.value for i in at.info
    ]


def test_range_and_grain_controls(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona")
    at.radio(key="kpis.grain").set_value("hour").run()
    assert not at.exception
    at.selectbox(key="kpis.range").select("Custom dates").run()
    today = at.date_input(key="kpis.dates").value[1]
    # A range that ends before the demo ran holds nothing, and says so.
    at.date_input(key="kpis.dates").set_value((today.replace(year=today.year - 1),) * 2).run()
    assert not at.exception
    assert _metrics(at)["Runs"] == "0"
    at.selectbox(key="kpis.range").select("All time").run()
    total, _s, _r = _runs(demo_url)
    assert _metrics(at)["Runs"] == f"{total:,}"


def test_versions_activated_later_appear_in_the_choices(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(demo_url)
    with write_session(engine) as session:
        activate_version(platform_for(engine), ENGINEER, "support", 2, reason="try v2")
        versions = session.exec(
            select(func.count())
            .select_from(AgentVersion)
            .join(Agent)
            .where(Agent.name == "support")
        ).one()
    engine.dispose()
    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona", state={"kpis.agent": "support"})
    assert at.selectbox(key="kpis.version").options == ["All versions"] + [
        str(n) for n in range(versions, 0, -1)
    ]


def test_a_broken_database_is_one_sentence(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = engine_for(demo_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE review_decisions"))
    engine.dispose()
    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona")
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The database did not answer (OperationalError); try again in a moment."
    ]


def test_model_usage_appears_only_when_a_model_was_asked(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona")
    assert "Language models" not in [s.value for s in at.subheader]
    engine = engine_for(demo_url)
    with write_session(engine) as session:
        run = session.exec(select(Run).order_by(col(Run.id))).first()
        assert run is not None and run.id is not None
        run.tokens_in, run.tokens_out, run.cost_usd = 900, 60, 0.0002
        session.add(run)
        session.add(
            Step(
                run_id=run.id,
                seq=run.step_count + 1,
                kind=StepKind.PROPOSAL,
                name="chat",
                status=StepStatus.OK,
                attributes={"model": "gpt-4o-mini", "model_attempts": 1, "model_latency_ms": 640},
            )
        )
    engine.dispose()
    st.cache_data.clear()  # the view caches its figures for a minute
    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona")
    assert "Language models" in [s.value for s in at.subheader]
    usage = next(df.value for df in at.dataframe if "model_calls" in df.value.columns)
    assert usage["model_calls"].sum() == 1
    assert usage["tokens_in"].sum() == 900


def test_a_failing_scheduled_evaluation_is_an_alert_above_the_kpis(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona")
    assert not at.error
    # Coherence per version is on the page, with how it is measured.
    assert "Coherence by version" in [s.value for s in at.subheader]
    coherence = next(df.value for df in at.dataframe if "path efficiency" in df.value.columns)
    assert set(coherence["agent"]) == {"support", "it-access"}
    assert "Path efficiency" in _metrics(at)

    engine = engine_for(demo_url)
    with write_session(engine) as session:
        agent = session.exec(select(Agent).where(col(Agent.name) == "support")).one()
        suite = EvalSuite(agent_id=agent.id or 0, name="nightly", created_by="erin")
        session.add(suite)
        session.flush()
        failed = EvalRun(
            suite_id=suite.id or 0,
            version_id=agent.active_version_id or 0,
            status=EvalRunStatus.FAILED,
            trigger="schedule",
            summary={"failed_cases": ["small-refund", "chair-approved"]},
            created_by="system",
        )
        session.add(failed)
        session.flush()
        failed_id = failed.id
    engine.dispose()
    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona")
    (alert,) = at.error
    assert "scheduled evaluation of an active version is failing" in alert.value
    assert f"suite nightly: scheduled evaluation {failed_id}" in alert.value
    assert "failed: small-refund, chair-approved" in alert.value
