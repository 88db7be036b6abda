"""The evaluations view: suites, running one on a version, results by case with their runs;
managers read without the run form."""

from __future__ import annotations

import pytest
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest

from agent.evals.service import run_evaluation
from agent.evals.suites import create_suite
from agent.versions import create_version
from storage.engine import read_session
from storage.enums import EvalRunStatus
from storage.models import EvalRun, Run
from tests.support.console import engine_for
from tests.support.pages import open_page
from tests.support.runtime import ENGINEER, platform_for
from tests.test_cli_evals import SMALL, STRICT
from tests.test_evals_runner import SUITE


def _open(url: str, monkeypatch: pytest.MonkeyPatch, user: str = "erin") -> AppTest:
    return open_page(
        monkeypatch, url, "evaluations.py", user=user, state={"evals.agent": "support"}
    )


def _table(at: AppTest, first_column: str) -> list[dict[str, object]]:
    frame = next(df.value for df in at.dataframe if df.value.columns[0] == first_column)
    return list(frame.to_dict("records"))


def test_an_engineer_runs_a_suite_and_reads_each_case(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(demo_url, monkeypatch)
    assert "no evaluation suite yet" in at.info[0].value
    engine = engine_for(demo_url)
    create_suite(platform_for(engine), ENGINEER, "support", "core", SUITE)
    at = _open(demo_url, monkeypatch)
    assert [row["suite"] for row in _table(at, "suite")] == ["core"]
    at.button(key="evals.run_submit").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == "core on v1: passed, 3 of 3 attempts passed"
    with read_session(engine) as session:
        evaluation = session.exec(select(EvalRun)).one()
        runs = session.exec(select(Run).where(col(Run.eval_run_id) == evaluation.id)).all()
    engine.dispose()
    assert (evaluation.status, evaluation.trigger, evaluation.created_by) == (
        EvalRunStatus.PASSED,
        "console",
        "erin",
    )
    listed = _table(at, "evaluation")
    assert [(r["evaluation"], r["status"], r["pass rate"]) for r in listed] == [
        (evaluation.id, "passed", "100%")
    ]
    cases = _table(at, "case")
    assert [(c["case"], c["passed"], c["what failed"]) for c in cases] == [
        ("small-refund", True, ""),
        ("chair-approved", True, ""),
        ("injected-5000-rejected", True, ""),
    ]
    assert sorted(c["run"] for c in cases) == sorted(f"/runs?run={r.id}" for r in runs)


def test_a_manager_reads_evaluations_without_running_them(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(demo_url)
    create_suite(platform_for(engine), ENGINEER, "support", "core", SUITE)
    engine.dispose()
    at = _open(demo_url, monkeypatch, user="mona")
    assert [row["suite"] for row in _table(at, "suite")] == ["core"]
    # The suite's cases, with what each expects, and its source.
    cases = _table(at, "name")
    assert [(c["name"], c["tags"]) for c in cases] == [
        ("small-refund", "normal"),
        ("chair-approved", "normal"),
        ("injected-5000-rejected", "security"),
    ]
    assert "governance" in str(cases[0]["expects"])
    assert cases[1]["reviewer answers"] == 1
    assert "injected-5000-rejected" in at.code[0].value
    assert not [b for b in at.button if b.key == "evals.run_submit"]
    assert at.info[-1].value.startswith("No evaluation has run yet: run a suite")


def test_two_evaluations_compared_show_the_regressed_case_first(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(demo_url)
    platform = platform_for(engine)
    create_suite(platform, ENGINEER, "support", "refunds", SMALL)
    create_version(platform, ENGINEER, "support", STRICT, note="stricter")
    (before,) = run_evaluation(platform, ENGINEER, "support", version=1)
    (after,) = run_evaluation(platform, ENGINEER, "support", version=3)
    engine.dispose()
    at = _open(demo_url, monkeypatch, user="mona")
    assert at.selectbox(key="evals.compare_a").value == before.id
    assert at.selectbox(key="evals.compare_b").value == after.id
    assert not [df for df in at.dataframe if df.value.columns[0] == "verdict"]
    at.button(key="evals.compare").click().run()
    assert not at.exception, at.exception
    assert [(m.label, m.value) for m in at.metric][-4:] == [
        ("Regressed", "1"),
        ("Fixed", "0"),
        ("Still failing", "0"),
        ("Still passing", "1"),
    ]
    cases = _table(at, "verdict")
    assert [(c["verdict"], c["case"], c["A"], c["B"]) for c in cases] == [
        ("regressed", "small-refund", "passed", "failed"),
        ("unchanged pass", "injected-5000", "passed", "passed"),
    ]
    assert "the run ended waiting_review, not succeeded" in str(cases[0]["what failed in B"])
    metrics = {m["metric"]: m for m in _table(at, "metric")}
    assert (metrics["pass_rate"]["A"], metrics["pass_rate"]["B"]) == (1.0, 0.5)
    assert metrics["by_tag.normal"]["delta"] == -1.0

    at.selectbox(key="evals.compare_a").set_value(after.id).run()
    at.button(key="evals.compare").click().run()
    assert at.info[-1].value == "Choose two different evaluations."
