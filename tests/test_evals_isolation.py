"""An evaluation never touches production: its refunds, emails and closed tickets happen in its
sandbox, and its runs, reviews, steps and ledger rows count in no production read (KPIs, the
review queue, run and task lists, status counts, pinned reviews), while its runs still open by
id. The coherence KPIs per version; the alert of a failing scheduled evaluation.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from textwrap import dedent
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col, select
from streamlit.testing.v1 import AppTest

from agent.actors import SYSTEM, Actor
from agent.demo.seed import seed_demo
from agent.demo.tasks import task_inputs
from agent.errors import Forbidden
from agent.evals.alerts import failing_schedules
from agent.evals.service import evaluation_results, run_evaluation
from agent.evals.suites import create_suite
from agent.reads.kpis import KpiFilter, kpi_comparison, kpi_report, model_usage_by_version
from agent.reads.queue import open_reviews, queue_choices
from agent.reads.runs import RunFilter, find_runs, run_details
from agent.reads.system import status
from agent.reads.tasks import work_overview
from agent.tasks import submit_task
from agent.versions import activate_version
from agent.versions.pinned import pinned_reviews
from storage.engine import read_session, write_session
from storage.enums import EvalRunStatus, ReviewStatus, RunStatus
from storage.models import (
    Agent,
    AgentVersion,
    EvalCase,
    EvalSuite,
    ItAccessGrant,
    ItApplication,
    ItEmployee,
    ItPasswordReset,
    Review,
    Run,
    SupportCustomer,
    SupportEmail,
    SupportFraudSignal,
    SupportOrder,
    SupportRefund,
    SupportTicket,
    ToolCall,
)
from tests.support.cli import ok, steward
from tests.support.console import APP, engine_for
from tests.support.runtime import (
    Effects,
    drive,
    install_agent,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)

ERIN = Actor.of("erin", ["engineer"])
OLGA = Actor.of("olga", ["operator"])
MONA = Actor.of("mona", ["manager"])
NOW = datetime(2030, 1, 1, tzinfo=UTC)  # open reviews are judged against their SLA at NOW
SYSTEMS_OF_RECORD: tuple[type[SQLModel], ...] = (
    SupportCustomer,
    SupportOrder,
    SupportRefund,
    SupportEmail,
    SupportTicket,
    SupportFraudSignal,
    ItEmployee,
    ItApplication,
    ItAccessGrant,
    ItPasswordReset,
)

# Refunds, emails and closed tickets in every case; one escalation approved, one left open.
SUITE = dedent(
    """
    description: Refunds with side effects everywhere.
    fixtures: demo
    threshold: 0.5
    cases:
      - name: small-refund
        tags: [normal]
        input:
          intent: refund
          customer_id: C-1001
          order_id: O-5001
          amount: 45.0
          ticket_id: T-9001
          reason: arrived damaged
          message: My mug set arrived broken. Please refund $45.
        expect:
          status: succeeded
          side_effects:
            must:
              - {table: support_refunds, where: {order_id: O-5001}, count: 1}
      - name: chair-approved
        tags: [normal]
        input:
          intent: refund
          customer_id: C-1004
          order_id: O-5004
          amount: 349.0
          ticket_id: T-9004
          reason: broken
          message: The chair broke. Please refund $349.
        reviewer:
          - {tool: issue_refund, decision: approve, reason: receipt checked}
        expect:
          status: succeeded
          side_effects:
            must:
              - {table: support_refunds, where: {order_id: O-5004}, count: 1}
      - name: desk-left-waiting
        tags: [edge]
        input:
          intent: refund
          customer_id: C-1005
          order_id: O-5005
          amount: 250.0
          ticket_id: T-9005
          reason: bent leg
          message: One leg of the desk is bent. A refund of $250 would settle it.
        expect:
          status: succeeded
    """
)


def _records(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every system of record."""
    with read_session(engine) as session:
        return {
            model.__name__: sorted(
                (row.model_dump(mode="json") for row in session.exec(select(model)).all()),
                key=repr,
            )
            for model in SYSTEMS_OF_RECORD
        }


def _production_reads(engine: Engine) -> dict[str, Any]:
    """What every production read shows, as plain data."""
    platform = platform_for(engine)
    queue = open_reviews(platform, OLGA, now=NOW)
    runs = find_runs(platform, MONA, limit=500)
    work = work_overview(platform, MONA, limit=500, now=NOW)
    pinned = pinned_reviews(platform, ERIN, "support", limit=500)
    return {
        "kpis": kpi_report(platform, MONA, KpiFilter(), now=NOW).as_dict(),
        "kpis of support v1": kpi_report(
            platform, MONA, KpiFilter(agent="support", version=1), now=NOW
        ).as_dict(),
        "comparison": kpi_comparison(platform, MONA, "support", 1, 2, now=NOW).to_json(),
        "model usage": model_usage_by_version(platform, MONA, KpiFilter()),
        "queue": ([i.as_dict() for i in queue.items], queue.open_count, queue.overdue_count),
        "queue choices": asdict(queue_choices(platform, OLGA)),
        "runs": ([r.as_dict() for r in runs.items], runs.total),
        "work": ([asdict(i) for i in work.items], work.counts, work.work.total),
        # The evaluation's own tables (suites, cases, runs, results) and the audit of who ran
        # it grow; every other table counts production's rows only.
        "status rows": {
            table: n
            for table, n in status(platform, MONA).row_counts.items()
            if not table.startswith("eval_") and table != "audit_events"
        },
        "pinned": (pinned.by_version, [asdict(r) for r in pinned.reviews.items]),
    }


@pytest.fixture
def production(engine: Engine) -> Engine:
    """The demo, with production traffic: refunds (small ones done, large ones waiting for an
    operator), order status updates, a deletion request; then version 2 made active, so the
    reviews still open are pinned to version 1."""
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    for task in task_inputs("support")[:6] + task_inputs("support")[13:16]:
        submit_task(platform, OLGA, "support", task)
    drive(engine)
    activate_version(platform, ERIN, "support", 2, reason="rehearse the stricter limit")
    return engine


def test_an_evaluation_changes_nothing_production_reads(production: Engine) -> None:
    engine = production
    platform = platform_for(engine)
    records, reads = _records(engine), _production_reads(engine)
    # Production holds what the comparison below must not confuse with the evaluation's.
    assert reads["queue"][1] >= 1
    assert reads["pinned"][0] == {1: reads["queue"][1]}
    assert records["SupportRefund"]

    create_suite(platform, ERIN, "support", "side-effects", SUITE)
    (evaluation,) = run_evaluation(platform, ERIN, "support", version=1, suite="side-effects")
    info, results = evaluation_results(platform, MONA, evaluation.id)
    outcome = {r.case: (r.passed, r.status) for r in results}
    assert outcome["small-refund"] == (True, "succeeded")
    assert outcome["chair-approved"] == (True, "succeeded")
    assert outcome["desk-left-waiting"] == (False, "waiting_review")

    # The evaluation refunded, wrote and closed tickets, and left a review open: in its
    # sandbox and its own rows, which production's tables would otherwise have counted.
    with read_session(engine) as session:
        eval_runs = session.exec(select(Run).where(col(Run.eval_run_id) == evaluation.id)).all()
        eval_ids = [r.id for r in eval_runs]
        refunds = session.exec(
            select(ToolCall).where(
                col(ToolCall.run_id).in_(eval_ids), col(ToolCall.tool) == "issue_refund"
            )
        ).all()
        open_eval_reviews = session.exec(
            select(Review).where(
                col(Review.run_id).in_(eval_ids),
                col(Review.status).in_(ReviewStatus.open_statuses()),
            )
        ).all()
        all_runs = session.execute(sa.select(sa.func.count()).select_from(Run)).scalar_one()
    assert len(eval_runs) == 3
    assert len(refunds) == 2
    assert len(open_eval_reviews) == 1
    assert all_runs == reads["runs"][1] + 3

    assert _records(engine) == records
    assert _production_reads(engine) == reads
    apart = status(platform, MONA).evaluation_rows
    assert (apart["runs"], apart["tasks"], apart["reviews"]) == (3, 3, 2)
    queue = open_reviews(platform, OLGA, now=NOW)
    assert open_eval_reviews[0].id not in {i.id for i in queue.items}

    # The evaluation's runs are listed on request, and each opens by id, marked as its.
    listed = find_runs(platform, MONA, RunFilter(evaluation=evaluation.id))
    assert sorted(r.id for r in listed.items) == sorted(eval_ids)
    waiting = open_eval_reviews[0].run_id
    trace = run_details(platform, OLGA, waiting)
    assert trace.run.eval_run_id == evaluation.id
    assert trace.run.status is RunStatus.WAITING_REVIEW
    assert [r.id for r in trace.reviews] == [open_eval_reviews[0].id]
    assert info.status is EvalRunStatus.PASSED  # 2 of 3 against a threshold of 0.5


def _shop_versions(engine: Engine) -> None:
    """The shop agent's version 1 goes straight to the refund; version 2 first proposes a
    lookup with malformed arguments and a tool outside its scope."""
    good = [
        {"calls": [{"tool": "lookup", "args": {"order_id": "O-1"}}]},
        {"calls": [{"tool": "pay", "args": {"order_id": "O-1", "amount": 40.0}}]},
        {"final": {"resolution": "refunded"}},
    ]
    detour = [
        {
            "calls": [
                {"tool": "lookup", "args": {"order": 1}},
                {"tool": "crm_export", "args": {}},
            ]
        },
        *good,
    ]
    install_agent(engine, "shop", scripted_version(good))
    with write_session(engine) as session:
        agent = session.exec(select(Agent).where(col(Agent.name) == "shop")).one()
        v1 = session.get(AgentVersion, agent.active_version_id)
        assert v1 is not None
        v2 = AgentVersion(
            agent_id=agent.id or 0,
            number=2,
            content_hash="shop-2",
            policy_hash="p",
            spec=scripted_version(detour),
            source_yaml="",
            created_by="erin",
        )
        session.add(v2)
        session.flush()
        agent.active_version_id = v2.id
        session.add(agent)


def test_coherence_per_version(engine: Engine) -> None:
    registry = shop_registry(Effects())
    platform = platform_for(engine, registry)
    _shop_versions(engine)
    with write_session(engine) as session:
        agent = session.exec(select(Agent).where(col(Agent.name) == "shop")).one()
        v1 = session.exec(
            select(AgentVersion.id).where(
                col(AgentVersion.agent_id) == agent.id, col(AgentVersion.number) == 1
            )
        ).one()
        active_v2 = agent.active_version_id
        agent.active_version_id = v1
        session.add(agent)
    for _ in range(2):
        submit(engine, "shop", {"intent": "refund", "order_id": "O-1"})
    submit(engine, "shop", {"order_id": "O-1"})  # no intent: validity counts, paths do not
    drive(engine, registry)
    with write_session(engine) as session:
        agent = session.exec(select(Agent).where(col(Agent.name) == "shop")).one()
        agent.active_version_id = active_v2
        session.add(agent)
    submit(engine, "shop", {"intent": "refund", "order_id": "O-1"})
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]

    report = kpi_report(platform, MONA, KpiFilter(agent="shop"), now=NOW)
    table = report.coherence.set_index("version")
    # v1: three runs, two calls each, all valid; v2: four calls, two refused (the malformed
    # lookup at the arguments stage, the CRM export at the scope stage).
    assert table.loc[1, "proposals"] == 6
    assert table.loc[1, "proposal_validity"] == 1.0
    assert (table.loc[2, "proposals"], table.loc[2, "invalid_or_out_of_scope"]) == (4, 2)
    assert table.loc[2, "proposal_validity"] == 0.5
    # The shortest known refund is v1's two calls; v2 took four.
    assert (table.loc[1, "runs_measured"], table.loc[1, "path_efficiency"]) == (2, 1.0)
    assert (table.loc[2, "runs_measured"], table.loc[2, "path_efficiency"]) == (1, 0.5)
    assert (table.loc[1, "median_tool_calls"], table.loc[2, "median_tool_calls"]) == (2.0, 4.0)
    assert report.proposals == {
        "checked": 10,
        "invalid_or_out_of_scope": 2,
        "valid_rate": 0.8,
        "path_runs": 3,
        "path_efficiency": round((1 + 1 + 0.5) / 3, 4),
        "median_tool_calls": 2.0,
    }
    # One version alone is measured against the paths of all of them.
    only_v2 = kpi_report(platform, MONA, KpiFilter(agent="shop", version=2), now=NOW)
    assert only_v2.proposals["path_efficiency"] == 0.5
    assert only_v2.proposals["valid_rate"] == 0.5
    assert {"proposal_validity", "path_efficiency"} <= set(only_v2.to_frame()["metric"])
    assert only_v2.as_dict()["coherence"][0]["path_efficiency"] == 0.5
    comparison = kpi_comparison(platform, MONA, "shop", 1, 2, now=NOW).set_index("metric")
    assert comparison.loc["path efficiency", "change"] == -0.5
    assert comparison.loc["valid, in-scope proposals", "change"] == -0.5

    # An evaluation case that knows a one-call refund sets the shortest known path.
    with write_session(engine) as session:
        agent = session.exec(select(Agent).where(col(Agent.name) == "shop")).one()
        suite = EvalSuite(agent_id=agent.id or 0, name="paths", created_by="erin")
        session.add(suite)
        session.flush()
        session.add(
            EvalCase(
                suite_id=suite.id or 0,
                name="one-call-refund",
                input={"intent": "refund", "order_id": "O-1"},
                shortest_path=1,
            )
        )
    table = kpi_report(platform, MONA, KpiFilter(agent="shop"), now=NOW).coherence
    efficiency = dict(zip(table["version"], table["path_efficiency"], strict=True))
    assert efficiency == {1: 0.5, 2: 0.25}


SCHEDULED = dedent(
    """
    description: The nightly drift check.
    fixtures: demo
    threshold: 1.0
    cases:
      - name: small-refund
        tags: [normal]
        input:
          intent: refund
          customer_id: C-1001
          order_id: O-5001
          amount: 45.0
          ticket_id: T-9001
          reason: arrived damaged
          message: My mug set arrived broken. Please refund $45.
        expect:
          status: {status}
    """
)


def test_failing_schedules_name_the_latest_scheduled_failure_of_the_active_version(
    engine: Engine,
) -> None:
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    create_suite(platform, ERIN, "support", "nightly", SCHEDULED.replace("{status}", "failed"))
    assert failing_schedules(platform, MONA) == ()
    # A failure run by hand is not the schedule's.
    run_evaluation(platform, ERIN, "support", suite="nightly")
    assert failing_schedules(platform, MONA) == ()

    (failed,) = run_evaluation(platform, SYSTEM, "support", suite="nightly", trigger="schedule")
    (alert,) = failing_schedules(platform, ERIN)
    assert (alert.agent, alert.suite, alert.version) == ("support", "nightly", 1)
    assert (alert.evaluation_id, alert.status) == (failed.id, EvalRunStatus.FAILED)
    assert alert.failed_cases == ("small-refund",)
    assert alert.at == failed.finished_at
    assert f"scheduled evaluation {failed.id}" in alert.sentence()
    with pytest.raises(Forbidden):
        failing_schedules(platform, OLGA)

    # A later scheduled run that passes clears it.
    create_suite(platform, ERIN, "support", "nightly", SCHEDULED.replace("{status}", "succeeded"))
    run_evaluation(platform, SYSTEM, "support", suite="nightly", trigger="schedule")
    assert failing_schedules(platform, MONA) == ()

    # A scheduled failure of a version no longer active raises no alert.
    create_suite(platform, ERIN, "support", "nightly", SCHEDULED.replace("{status}", "failed"))
    run_evaluation(platform, SYSTEM, "support", suite="nightly", trigger="schedule")
    assert len(failing_schedules(platform, MONA)) == 1
    activate_version(platform, ERIN, "support", 2, reason="move on")
    assert failing_schedules(platform, MONA) == ()


def test_the_cli_lists_production_by_default_and_an_evaluation_on_request(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(demo_url)
    platform = platform_for(engine)
    create_suite(platform, ERIN, "support", "side-effects", SUITE)
    (evaluation,) = run_evaluation(platform, ERIN, "support", suite="side-effects")
    with read_session(engine) as session:
        eval_ids = sorted(
            session.exec(select(Run.id).where(col(Run.eval_run_id) == evaluation.id)).all()
        )
        production_ids = set(
            session.exec(select(Run.id).where(col(Run.eval_run_id).is_(None))).all()
        )
    engine.dispose()

    listed = json.loads(
        ok(steward(demo_url, "runs", "list", "--as", "mona", "--json", "--limit", "500"))
    )
    assert {r["id"] for r in listed["items"]} == production_ids
    mine = json.loads(
        ok(
            steward(
                demo_url,
                "runs",
                "list",
                "--evaluation",
                str(evaluation.id),
                "--as",
                "mona",
                "--json",
            )
        )
    )
    assert sorted(r["id"] for r in mine["items"]) == eval_ids
    shown = ok(steward(demo_url, "runs", "show", str(eval_ids[0]), "--as", "olga"))
    assert f"evaluation {evaluation.id}: this run is an evaluation's" in shown
    queue = json.loads(ok(steward(demo_url, "reviews", "list", "--as", "olga", "--json")))
    assert not {r["run_id"] for r in queue["items"]} & set(eval_ids)

    kpis = json.loads(ok(steward(demo_url, "kpis", "--as", "mona", "--json")))
    assert kpis["runs"]["total"] == len(production_ids)
    assert {row["agent"] for row in kpis["coherence"]} == {"support", "it-access"}
    assert "path_efficiency" in kpis["proposals"]
    text = ok(steward(demo_url, "kpis", "--as", "mona"))
    assert "coherence: valid, in-scope proposals" in text

    # The run page opens an evaluation's run from its link, and says whose it is.
    monkeypatch.setenv("STEWARD_DATABASE_URL", demo_url)
    monkeypatch.setenv("STEWARD_EMBEDDED_WORKER", "0")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth.user"] = {"name": "olga"}
    at.query_params["run"] = str(eval_ids[0])
    at.switch_page("views/runs.py")
    at.run()
    assert not at.exception, at.exception
    assert f"Run {eval_ids[0]}: support v1" in [s.value for s in at.subheader]
    (marker,) = [i.value for i in at.info if "belongs to evaluation" in i.value]
    assert f"This run belongs to evaluation {evaluation.id}" in marker
