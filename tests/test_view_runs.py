"""The runs view: filters, paging, opening a run, and a run's trace reached by ``?run=ID``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest

from agent import reviews
from agent.actors import Actor
from agent.evals.suites import create_suite
from agent.plugins import installed_registry
from agent.versions.service import activate_version
from storage.engine import read_session, write_session
from storage.enums import ErrorClass, ReviewStatus, RunStatus, StepKind, StepStatus
from storage.models import EvalSuite, Review, Run, Step
from storage.types import utcnow
from tests.support.console import engine_for, open_console
from tests.support.runtime import ENGINEER, drive, platform_for
from tests.test_cli_evals import SMALL

APP = str(Path(__file__).resolve().parents[1] / "console" / "app.py")


@pytest.fixture
def db(demo_url: str) -> Iterator[Engine]:
    engine = engine_for(demo_url)
    yield engine
    engine.dispose()


def linked(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    run: str,
    user: str = "olga",
    page: str = "views/run.py",
) -> AppTest:
    """The console opened on ``run?run=<run>``, as a link followed in a signed-in session."""
    monkeypatch.setenv("STEWARD_DATABASE_URL", url)
    monkeypatch.setenv("STEWARD_EMBEDDED_WORKER", "0")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth.user"] = {"name": user}
    at.query_params["run"] = run
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def frame(at: AppTest, first_column: str) -> pd.DataFrame:
    """The table whose first column is ``first_column`` (st.dataframe keeps no key in AppTest)."""
    tables = [df.value for df in at.dataframe]
    return next(t for t in tables if len(t.columns) and t.columns[0] == first_column)


def click_row(at: AppTest, key: str, row: int) -> None:
    """Click row ``row`` of the clickable table ``key`` (as a person's click selects it)."""
    clicks = at.session_state[f"{key}.clicks"]  # set once the table is drawn
    at.session_state[f"{key}.{clicks}"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()


def texts(elements: object) -> str:
    return " ".join(str(e.value) for e in elements)  # type: ignore[attr-defined]


def run_count(engine: Engine, *conditions: sa.ColumnElement[bool]) -> int:
    with read_session(engine) as session:
        return int(
            session.execute(
                sa.select(sa.func.count()).select_from(Run).where(*conditions)
            ).scalar_one()
        )


def test_run_list_filters_pages_and_opens_a_run(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_console(monkeypatch, demo_url, user="erin", page="runs.py")
    total = run_count(db)
    assert f"{total:,} runs match · page 1 of 2" in texts(at.caption)
    assert len(frame(at, "run")) == 50
    at.pagination[0].set_value(2).run()
    assert not at.exception
    assert len(frame(at, "run")) == total - 50

    at.selectbox(key="runs.filter.status").set_value("waiting_review").run()
    waiting = run_count(db, col(Run.status) == RunStatus.WAITING_REVIEW)
    table = frame(at, "run")
    assert len(table) == waiting
    assert set(table["outcome"]) == {"waiting_review"}
    # A new filter starts on its first page.
    assert f"{waiting:,} runs match · page 1 of 1" in texts(at.caption)

    at.selectbox(key="runs.filter.agent").set_value("it-access").run()
    at.selectbox(key="runs.filter.version").set_value(1).run()
    table = frame(at, "run")
    assert set(table["agent"]) == {"it-access v1"}
    assert len(table) == run_count(
        db,
        col(Run.status) == RunStatus.WAITING_REVIEW,
        col(Run.agent_id) == 2,
        col(Run.version_id) == 3,
    )

    # A click on the first row opens that run on its own page.
    chosen = int(table.iloc[0]["run"])
    click_row(at, "runs.table", 0)
    assert not at.exception
    assert at.query_params["run"] == str(chosen)
    assert at.subheader[0].value.startswith(f"Run {chosen}: it-access v1")
    # The sidebar's Runs link (another page now, and links in the navigation carry no query)
    # leaves the run for the list, where no row is still selected.
    del at.query_params["run"]
    at.switch_page("views/runs.py").run()
    assert not at.exception
    assert "runs match" in texts(at.caption)
    assert not at.subheader, "the list reopened the run clicked before"


def test_error_class_and_time_range_filters(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with write_session(db) as session:
        run = session.get(Run, 2)
        old = session.get(Run, 3)
        assert run is not None and old is not None
        run.error_class = ErrorClass.INTERNAL_ERROR
        old.created_at = utcnow() - timedelta(days=2)
        session.add_all([run, old])
    at = open_console(monkeypatch, demo_url, user="mona", page="runs.py")
    at.selectbox(key="runs.filter.error_class").set_value("internal_error").run()
    assert list(frame(at, "run")["run"]) == [2]

    at.selectbox(key="runs.filter.error_class").set_value(None).run()
    at.selectbox(key="runs.filter.range").set_value("Last 24 hours").run()
    assert f"{run_count(db) - 1:,} runs match" in texts(at.caption)
    at.pagination[0].set_value(2).run()
    assert 3 not in set(frame(at, "run")["run"])
    at.selectbox(key="runs.filter.range").set_value("Custom dates").run()
    at.date_input(key="runs.filter.dates").set_value(
        (pd.Timestamp("2020-01-01").date(), pd.Timestamp("2020-01-31").date())
    ).run()
    assert not at.exception
    assert "No run matches these filters: clear one, or widen the time range." in texts(at.info)


def test_a_linked_run_shows_its_trace_and_the_version_it_was_pinned_to(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    activate_version(platform_for(db), Actor.of("erin", ["engineer"]), "support", 2, reason="v2")
    at = linked(monkeypatch, demo_url, "1")
    assert at.subheader[0].value == "Run 1: support v1"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] in ("succeeded · resolved", "succeeded · declined")
    timeline = frame(at, "seq")
    assert list(timeline["seq"]) == list(range(1, len(timeline) + 1))
    assert {"invoke_agent", "proposal", "apply_guardrail", "execute_tool", "final_output"} <= set(
        timeline["kind"]
    )
    guardrails = timeline[timeline["kind"] == "apply_guardrail"]
    assert (guardrails["rule"] != "").all()
    assert "The answer meets the output contract." in texts(at.success)
    calls = frame(at, "call")
    assert (calls["attempts"] >= 1).all()
    assert "issue_refund" in set(calls["tool"])
    rules = frame(at, "rule")
    assert "refund-needs-approval" in set(rules["rule"])
    assert "Version support v1, as pinned when the run started" in texts(at.markdown)

    assert not at.code
    at.toggle(key="runs.show_yaml").set_value(True).run()
    assert "Customer support agent, version 1" in at.code[0].value

    at.selectbox(key="runs.step").set_value(2).run()
    assert not at.exception
    assert at.json[-1].value  # the chosen step's input and output


def test_an_older_runs_link_opens_the_run_page(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = linked(monkeypatch, demo_url, "1", page="views/runs.py")
    assert at.subheader[0].value == "Run 1: support v1"


def test_a_run_decided_by_a_person_shows_who_and_why(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with read_session(db) as session:
        refund = session.exec(
            select(Review)
            .where(col(Review.rule_id) == "refund-needs-approval")
            .where(col(Review.status) == ReviewStatus.PENDING)
            .order_by(col(Review.id))
        ).first()
    assert refund is not None and refund.id is not None
    waiting = linked(monkeypatch, demo_url, str(refund.run_id))
    assert "The run is waiting review; this page follows it live." in texts(waiting.info)
    assert frame(waiting, "review").iloc[0]["decided by"] == ""

    reviews.approve(
        platform_for(db), Actor.of("olga", ["operator"]), refund.id, reason="receipt checked"
    )
    drive(db, installed_registry())
    at = linked(monkeypatch, demo_url, str(refund.run_id))
    assert {m.label: m.value for m in at.metric}["Status"] == "succeeded · resolved"
    # The review's id links to it in the queue.
    assert frame(at, "review").iloc[0]["review"] == f"/queue?review={refund.id}"
    decisions = frame(at, "review")
    assert decisions.iloc[0][["status", "decided by", "reason"]].tolist() == [
        "approved",
        "olga",
        "receipt checked",
    ]
    timeline = frame(at, "seq")
    human = timeline[timeline["kind"] == "human_approval"]
    assert human["what happened"].tolist() == ["approved by olga: receipt checked"]


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("abc", "The link names run 'abc', which is not a run number."),
        ("99999", "Run 99999 does not exist."),
        # Beyond the database's INTEGER: still just a run that does not exist.
        ("99999999999999999999", "Run 99999999999999999999 does not exist."),
        ("²", "The link names run '²', which is not a run number."),
    ],
)
def test_a_bad_run_link_says_so_in_one_sentence(
    demo_url: str, monkeypatch: pytest.MonkeyPatch, link: str, message: str
) -> None:
    at = linked(monkeypatch, demo_url, link)
    assert [e.value for e in at.error] == [message]


def test_a_chat_planned_run_shows_its_model_calls(
    db: Engine, demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trace a chat planner leaves: proposal steps carrying the model's telemetry.
    with write_session(db) as session:
        run = session.exec(select(Run).order_by(col(Run.id))).first()
        assert run is not None and run.id is not None
        run.tokens_in, run.tokens_out, run.cost_usd = 1200, 80, 0.00023
        session.add(run)
        session.add(
            Step(
                run_id=run.id,
                seq=run.step_count + 1,
                kind=StepKind.PROPOSAL,
                name="chat",
                status=StepStatus.OK,
                attributes={
                    "model": "gpt-4o-mini",
                    "prompt_tokens": 1200,
                    "completion_tokens": 80,
                    "cost_usd": 0.00023,
                    "model_latency_ms": 812.5,
                    "model_attempts": 2,
                    "model_http": ["429", "200"],
                    "finish_reason": "tool_calls",
                },
            )
        )
        run_id = run.id
    at = linked(monkeypatch, demo_url, str(run_id))
    calls = frame(at, "step")
    assert list(calls["model"]) == ["gpt-4o-mini"]
    assert list(calls["HTTP attempts"]) == ["429 → 200"]
    assert list(calls["tokens in"]) == [1200]
    assert "1 calls (0 failed)" in texts(at.caption)


def test_an_engineer_adds_a_finished_run_to_a_suite(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:

    create_suite(platform_for(db), ENGINEER, "support", "refunds", SMALL)
    with read_session(db) as session:
        run = session.exec(
            select(Run)
            .where(col(Run.status) == RunStatus.SUCCEEDED)
            .where(col(Run.eval_run_id).is_(None))
            .order_by(col(Run.id))
        ).first()
    assert run is not None
    manager = linked(monkeypatch, demo_url, str(run.id), user="mona")
    assert not [b for b in manager.button if b.key == "runs.add_case.submit"]

    at = linked(monkeypatch, demo_url, str(run.id), user="erin")
    assert at.selectbox(key="runs.add_case.suite").value == "refunds"
    assert at.text_input(key="runs.add_case.name").value == f"run-{run.id}"
    at.text_input(key="runs.add_case.name").input("mug-refund")
    at.multiselect(key="runs.add_case.tags").select("edge")
    at.button(key="runs.add_case.submit").click().run()
    assert not at.exception, at.exception
    assert (
        "Added case mug-refund (expects status, resolution, trajectory) to suite refunds, "
        "which now has 3 cases." in texts(at.success)
    )
    with read_session(db) as session:
        suite = session.exec(select(EvalSuite).where(col(EvalSuite.name) == "refunds")).one()
    case = suite.document["cases"][-1]
    assert (case["name"], case["tags"], case["input"]["order_id"]) == (
        "mug-refund",
        ["normal", "edge"],
        "O-5001",
    )
    assert case["expect"]["status"] == "succeeded"
    assert [c["tool"] for c in case["expect"]["trajectory"]["calls"]][-1] == "close_ticket"

    # The same name again is refused in one sentence, and the suite is unchanged.
    at.button(key="runs.add_case.submit").click().run()
    assert "Suite 'refunds' already has a case named 'mug-refund'" in texts(at.error)
    with read_session(db) as session:
        again = session.exec(select(EvalSuite).where(col(EvalSuite.name) == "refunds")).one()
    assert again.content_hash == suite.content_hash


def test_the_latency_chart_gives_every_step_a_bar_it_can_label(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:

    at = linked(monkeypatch, demo_url, "1")
    charts = [e for e in at.main if e.type == "vega_lite_chart" and e.key != "runs.waterfall"]
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)  # type: ignore[attr-defined]
    # Steps down the side (names in full on the axis), one bar of about 24 px each.
    assert spec["encoding"]["y"]["field"] == "step"
    bars = frame(at, "seq")
    timed = bars[~bars["kind"].isin(["invoke_agent", "human_approval"])]
    timed = timed[timed["duration ms"].fillna(0) > 0]
    assert spec["height"] >= 24 * len(timed) > 0


def test_the_waterfall_nests_steps_marks_errors_and_draws_the_human_wait(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.reads.runs import run_details
    from console.components.waterfall import HUMAN_WAIT, waterfall_frame

    with read_session(db) as session:
        failed_run = session.exec(
            select(Step.run_id).where(col(Step.error_class).is_not(None))
        ).first()
        refund = session.exec(
            select(Review)
            .where(col(Review.rule_id) == "refund-needs-approval")
            .where(col(Review.status) == ReviewStatus.PENDING)
        ).first()
    assert failed_run is not None and refund is not None and refund.id is not None
    reviews.approve(platform_for(db), Actor.of("olga", ["operator"]), refund.id, reason="ok")
    drive(db, installed_registry())
    olga = Actor.of("olga", ["operator"])

    decided = waterfall_frame(run_details(platform_for(db), olga, refund.run_id).steps)
    by_lane = decided.set_index("lane")
    assert HUMAN_WAIT in by_lane.index
    # Nested by kind: the run, then each turn's proposal, its decision, its tool attempts.
    labels = dict(zip(decided["lane"], decided["step"], strict=False))
    assert not labels["invoke_agent"].split(maxsplit=1)[1].startswith(" ")
    assert "  issue_refund" in labels["execute_tool"] or "      " in labels["execute_tool"]
    assert (decided["end ms"] > decided["start ms"]).all()
    assert (decided["start ms"] >= 0).all()

    failing = waterfall_frame(run_details(platform_for(db), olga, failed_run).steps)
    assert failing["failed"].any()
    assert set(failing.loc[failing["failed"], "error"]) - {""}

    # A click on a bar opens that step's input and output below the chart.
    at = linked(monkeypatch, demo_url, str(refund.run_id))
    [chart] = [e for e in at.main if e.key == "runs.waterfall"]
    spec = json.loads(chart.proto.spec)  # type: ignore[attr-defined]
    assert spec["layer"][0]["params"][0]["name"] == "step"
    assert spec["height"] >= 22 * len(decided)
    at.session_state["runs.waterfall"] = {"selection": {"step": [{"seq": 3}]}}
    at.run()
    assert not at.exception
    assert at.selectbox(key="runs.step").value == 3
    assert at.json[-1].value
    at.toggle(key="runs.conversation").set_value(True).run()
    assert not at.exception
    assert any("by rule `refund-needs-approval`" in m.value for m in at.markdown)
