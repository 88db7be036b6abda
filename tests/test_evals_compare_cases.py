"""Comparing two evaluations (what may be compared, and how cases are matched), and cases made
from production runs (an override, a run nobody reviewed, what is refused)."""

from __future__ import annotations

from collections.abc import Iterator
from textwrap import dedent

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import SYSTEM
from agent.demo.seed import seed_demo
from agent.demo.tasks import task_inputs
from agent.errors import Forbidden, InvalidInput, NotFound
from agent.evals.cases import add_case, append_case, case_from_run
from agent.evals.compare import Verdict, compare_evaluations
from agent.evals.service import evaluation_results, run_evaluation
from agent.evals.suites import create_suite
from agent.reviews import decide
from storage.engine import read_session
from storage.enums import DecisionKind, ReviewStatus, RunStatus
from storage.models import EvalSuite, Review, Run
from tests.support.console import engine_for
from tests.support.runtime import ENGINEER, MANAGER, OPERATOR, drive, platform_for
from tests.test_cli_evals import SMALL

SMALL_ONLY = SMALL.split("  - name: injected-5000")[0]
INJECTED_ONLY = SMALL.replace(SMALL_ONLY.split("cases:\n")[1], "")
IT_ACCESS = dedent(
    """
    fixtures: demo
    cases:
      - name: first-request
        tags: [normal]
        input: {input}
        expect:
          status: succeeded
    """
)


@pytest.fixture
def db(demo_url: str) -> Iterator[Engine]:
    engine = engine_for(demo_url)
    yield engine
    engine.dispose()


def _it_access_suite(engine: Engine) -> None:
    first = task_inputs("it-access")[0]
    create_suite(
        platform_for(engine),
        ENGINEER,
        "it-access",
        "core",
        IT_ACCESS.replace("{input}", yaml.safe_dump(first, default_flow_style=True).strip()),
    )


def test_suites_that_share_cases_compare_on_those_and_say_so(db: Engine) -> None:
    platform = platform_for(db)
    create_suite(platform, ENGINEER, "support", "both", SMALL)
    create_suite(platform, ENGINEER, "support", "small", SMALL_ONLY)
    create_suite(platform, ENGINEER, "support", "injected", INJECTED_ONLY)
    (both,) = run_evaluation(platform, ENGINEER, "support", suite="both")
    (small,) = run_evaluation(platform, ENGINEER, "support", suite="small")
    (injected,) = run_evaluation(platform, ENGINEER, "support", suite="injected")

    comparison = compare_evaluations(platform, MANAGER, both.id, small.id)
    assert not comparison.same_suite
    assert comparison.shared_cases == 1
    assert comparison.note is not None
    assert "only the 1 cases they share" in comparison.note
    assert [(c.case, c.verdict) for c in comparison.cases] == [
        ("injected-5000", Verdict.REMOVED),
        ("small-refund", Verdict.UNCHANGED_PASS),
    ]
    backwards = compare_evaluations(platform, MANAGER, small.id, both.id)
    assert backwards.of(Verdict.ADDED)[0].case == "injected-5000"
    assert backwards.of(Verdict.ADDED)[0].passed_b is True

    with pytest.raises(InvalidInput, match="share no case"):
        compare_evaluations(platform, MANAGER, small.id, injected.id)
    with pytest.raises(Forbidden):
        compare_evaluations(platform, SYSTEM, both.id, small.id)

    _it_access_suite(db)
    (other,) = run_evaluation(platform, ENGINEER, "it-access", suite="core")
    with pytest.raises(InvalidInput, match=r"of agent 'support' and \d+ of 'it-access'"):
        compare_evaluations(platform, MANAGER, both.id, other.id)


def test_an_overridden_block_becomes_a_case_that_passes_through_a_real_override(
    db: Engine,
) -> None:
    platform = platform_for(db)
    create_suite(platform, ENGINEER, "support", "refunds", SMALL)
    with read_session(db) as session:
        block = session.exec(
            select(Review)
            .where(col(Review.rule_id) == "refund-over-limit")
            .where(col(Review.status) == ReviewStatus.BLOCKED)
            .order_by(col(Review.id))
        ).first()
    assert block is not None
    assert block.id is not None
    decide(platform, MANAGER, block.id, DecisionKind.OVERRIDE, reason="goodwill, VP approved")
    drive(db)

    case = case_from_run(platform, ENGINEER, block.run_id, tags=["edge", "edge"])
    assert case["tags"] == ["edge"]
    assert case["reviewer"] == [
        {
            "tool": "issue_refund",
            "rule": "refund-over-limit",
            "decision": "override",
            "reason": "goodwill, VP approved",
            "as": "manager",
        }
    ]
    assert case["expect"] == {
        "status": "succeeded",
        "governance": {
            "decisions": [{"tool": "issue_refund", "rule": "refund-over-limit", "decision": "deny"}]
        },
    }
    added = add_case(
        platform, ENGINEER, "support", "refunds", block.run_id, name="goodwill", tags=["edge"]
    )
    assert added.suite.tags == {"edge": 1, "normal": 1, "security": 1}
    (evaluation,) = run_evaluation(platform, ENGINEER, "support", suite="refunds")
    _info, results = evaluation_results(platform, MANAGER, evaluation.id)
    assert {r.case: r.failures for r in results}["goodwill"] == ()


def test_a_run_nobody_reviewed_gives_its_outcome_and_path(db: Engine) -> None:
    platform = platform_for(db)
    with read_session(db) as session:
        run = session.exec(
            select(Run).where(col(Run.status) == RunStatus.SUCCEEDED).order_by(col(Run.id))
        ).first()
    assert run is not None
    assert run.id is not None
    case = case_from_run(platform, ENGINEER, run.id)
    assert case["tags"] == ["normal"]
    assert case["expect"]["status"] == "succeeded"
    assert case["expect"]["resolution"] == "resolved"
    assert case["expect"]["trajectory"]["match"] == "in_order"
    assert case["expect"]["trajectory"]["calls"][0] == {"tool": "lookup_customer"}
    assert "reviewer" not in case


def test_what_cannot_become_a_case_is_refused_in_words(db: Engine) -> None:
    platform = platform_for(db)
    create_suite(platform, ENGINEER, "support", "refunds", SMALL)
    _it_access_suite(db)
    with read_session(db) as session:
        waiting = session.exec(
            select(Run).where(col(Run.status) == RunStatus.WAITING_REVIEW).order_by(col(Run.id))
        ).first()
        finished = session.exec(
            select(Run).where(col(Run.status) == RunStatus.SUCCEEDED).order_by(col(Run.id))
        ).first()
    assert finished is not None
    assert finished.id is not None
    assert waiting is not None
    with pytest.raises(InvalidInput, match="is waiting_review and nobody has decided"):
        case_from_run(platform, ENGINEER, waiting.id or 0)
    with pytest.raises(Forbidden, match="olga \\(operator\\) may not"):
        case_from_run(platform, OPERATOR, finished.id)
    with pytest.raises(InvalidInput, match="is a run of agent 'support', not of 'it-access'"):
        add_case(platform, ENGINEER, "it-access", "core", finished.id)
    with pytest.raises(InvalidInput, match="is not a tag"):
        add_case(platform, ENGINEER, "support", "refunds", finished.id, tags=["no spaces"])
    with pytest.raises(NotFound, match="run 999999 does not exist"):
        add_case(platform, ENGINEER, "support", "refunds", 999999)


def test_a_case_is_appended_keeping_comments_or_written_out_when_the_list_is_inline() -> None:
    case = {"name": "new", "input": {"intent": "refund"}, "expect": {"status": "succeeded"}}
    block = dedent(
        """\
        # Refund rules, kept by the support team.
        threshold: 0.9  # one miss allowed
        cases:
            - name: old  # the first one
              input: {intent: refund}
              expect: {status: succeeded}
        schedule: '0 * * * *'
        """
    )
    appended = append_case(block, case)
    assert appended.startswith("# Refund rules, kept by the support team.\n")
    assert "threshold: 0.9  # one miss allowed" in appended
    assert "- name: old  # the first one" in appended
    assert appended.endswith("schedule: '0 * * * *'\n")
    document = yaml.safe_load(appended)
    assert document["cases"] == [
        {"name": "old", "input": {"intent": "refund"}, "expect": {"status": "succeeded"}},
        case,
    ]
    inline = "cases: [{name: old, input: {intent: refund}, expect: {status: succeeded}}]\n"
    assert yaml.safe_load(append_case(inline, case))["cases"][-1] == case


def test_a_change_built_on_a_stale_suite_is_refused(engine: Engine) -> None:
    """add_case stores the suite only if it still has the hash it was read with, on SQLite
    and PostgreSQL (where the suite's row is locked while it is checked)."""
    seed_demo(platform_for(engine), with_tasks=False)
    platform = platform_for(engine)
    first = create_suite(platform, ENGINEER, "support", "refunds", SMALL)
    second = create_suite(platform, ENGINEER, "support", "refunds", SMALL_ONLY)
    with pytest.raises(InvalidInput, match="suite 'refunds' changed while this change"):
        create_suite(
            platform, ENGINEER, "support", "refunds", INJECTED_ONLY, replaces=first.content_hash
        )
    with read_session(engine) as session:
        stored = session.exec(select(EvalSuite).where(col(EvalSuite.name) == "refunds")).one()
    assert stored.content_hash == second.content_hash
    third = create_suite(
        platform, ENGINEER, "support", "refunds", INJECTED_ONLY, replaces=second.content_hash
    )
    assert third.cases == 1
