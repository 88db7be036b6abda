"""Policy replay: a candidate policy evaluated on an agent's recorded decisions, from stored rows
alone, reporting flips, contradicted human decisions and executed calls it would now deny."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import Actor
from agent.demo import version_yaml
from agent.demo.seed import seed_demo
from agent.errors import Forbidden, InvalidInput, VersionSpecError
from agent.platform import Platform
from agent.plugins import installed_registry
from agent.release.replay import list_replays, replay_policy
from agent.reviews import decide
from agent.tasks import submit_task
from agent.tools.base import ToolContext
from agent.tools.python import PythonTool
from agent.tools.registry import ToolRegistry
from storage import migrate
from storage.engine import create_engine, read_session
from storage.enums import DecisionKind, ReviewStatus
from storage.models import AgentVersion, Review, Run, Task
from tests.support.cli import ok, refused, steward
from tests.support.runtime import drive, platform_for

ERIN = Actor.of("erin", ["engineer"])
# Partial refunds between $100 and $200 on the chair's and the monitor's orders.
PARTIALS = (("C-1004", "O-5004", 150.0, "T-9004"), ("C-1006", "O-5006", 180.0, "T-9006"))
OLGA = Actor.of("olga", ["operator"])
MONA = Actor.of("mona", ["manager"])


class Tripwire:
    """A registry with the installed tools and facts, each of which records that it was called."""

    def __init__(self) -> None:
        self.called: list[str] = []
        self.registry = ToolRegistry()
        installed = installed_registry()
        for name in installed.tool_names:
            self.registry.register_tool(PythonTool(installed.tool(name).spec, self._tool(name)))
        for name in installed.fact_names:
            self.registry.register_fact(name, self._fact(name), inputs=installed.fact_inputs(name))

    def _tool(self, name: str) -> Any:
        def call(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
            self.called.append(f"tool {name}")
            raise AssertionError(f"replay called tool {name}")

        return call

    def _fact(self, name: str) -> Any:
        def read(*args: Any, **kwargs: Any) -> Any:
            self.called.append(f"fact {name}")
            raise AssertionError(f"replay read fact {name}")

        return read


def _run_of(engine: Engine, order: str, *, amount: float | None = None) -> int:
    with read_session(engine) as session:
        runs = session.exec(
            select(Run.id, Task.input)
            .join(Task, col(Task.id) == col(Run.task_id))
            .where(col(Run.eval_run_id).is_(None))
        ).all()
    return next(
        run
        for run, task in runs
        if task.get("order_id") == order and amount in (None, task.get("amount"))
    )


def _amounts(engine: Engine) -> dict[int, float]:
    """The refund amount each refund run's task asked for, by run."""
    with read_session(engine) as session:
        runs = session.exec(
            select(Run.id, Task.input)
            .join(Task, col(Task.id) == col(Run.task_id))
            .where(col(Run.eval_run_id).is_(None))
        ).all()
    return {
        run: float(task["amount"])
        for run, task in runs
        if task.get("intent") == "refund" and isinstance(task.get("amount"), int | float)
    }


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def history(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """The demo's sample traffic on support v1, with the chair's $349 refund approved by an
    operator (and paid) and the desk's $250 refund rejected; built once per database, since a
    replay only adds its saved report."""
    if request.param == "sqlite":
        url: Any = f"sqlite:///{tmp_path_factory.mktemp('replay') / 'steward.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database("steward_replay")
    engine = create_engine(url)
    migrate.upgrade(engine)  # the CLI test runs the real command, which checks the schema
    yield _history(engine)
    engine.dispose()


def _history(engine: Engine) -> Engine:
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=True, with_evaluations=False)
    drive(engine, max_claims=500)
    with read_session(engine) as session:
        reviews = {
            (r.args or {}).get("order_id"): r
            for r in session.exec(
                select(Review).where(col(Review.status) == ReviewStatus.PENDING)
            ).all()
        }
    decide(platform, OLGA, reviews["O-5004"].id or 0, DecisionKind.APPROVE)
    decide(platform, OLGA, reviews["O-5005"].id or 0, DecisionKind.REJECT, reason="bent leg only")
    # Two partial refunds between $100 and $200, which v1 escalates: one approved, one rejected.
    for customer, order, amount, ticket in PARTIALS:
        submit_task(
            platform,
            OLGA,
            "support",
            {
                "intent": "refund",
                "customer_id": customer,
                "order_id": order,
                "amount": amount,
                "ticket_id": ticket,
                "reason": "partial",
                "message": f"A partial refund of ${amount:.0f} would settle it.",
            },
        )
    drive(engine, max_claims=500)
    with read_session(engine) as session:
        partial = {
            (r.args or {}).get("amount"): r
            for r in session.exec(
                select(Review).where(col(Review.status) == ReviewStatus.PENDING)
            ).all()
        }
    decide(platform, OLGA, partial[150.0].id or 0, DecisionKind.APPROVE)
    decide(platform, OLGA, partial[180.0].id or 0, DecisionKind.REJECT, reason="too much")
    drive(engine, max_claims=500)
    return engine


def test_a_stored_candidate_flips_what_it_decides_differently(history: Engine) -> None:
    tripwire = Tripwire()
    platform = Platform(history, tripwire.registry)
    try:
        report = replay_policy(platform, ERIN, "support", candidate_version=2)
    finally:
        platform.close()
    assert tripwire.called == []
    assert report.decisions == report.replayed > 10
    flips = {(f.from_effect, f.to_effect, f.rule_id, f.tool, f.version): f for f in report.flips}
    # v2 lowered the auto-refund limit from $100 to $50: refunds v1 allowed between the two
    # (the $100 lamp and the $59 backpack among them) would have waited for a person.
    stricter = flips[("allow", "escalate", "refund-needs-approval", "issue_refund", 1)]
    amounts = _amounts(history)
    assert {_run_of(history, "O-5003"), _run_of(history, "O-5009")} <= set(stricter.runs)
    assert all(50.0 < amounts[run] <= 100.0 for run in stricter.runs)
    assert stricter.count == len(stricter.runs) >= 2
    assert report.contradictions == ()
    assert report.executed_now_denied == ()
    assert report.queue["projected_escalations_per_day"] > report.queue["escalations_per_day"]
    saved = list_replays(platform_for(history), MONA, "support", version=2)
    assert saved[0].id == report.id
    assert saved[0].as_dict()["flips"] == report.as_dict()["flips"]


def test_a_candidate_document_names_the_human_decisions_it_contradicts(
    history: Engine,
) -> None:
    platform = platform_for(history)
    looser = (
        version_yaml("support-v1")
        .replace("when: args.amount <= 100.0", "when: args.amount <= 500.0")
        .replace("when: args.amount > 100.0 &&", "when: args.amount > 500.0 &&")
    )
    report = replay_policy(platform, ERIN, "support", candidate_yaml=looser)
    flips = {(f.from_effect, f.to_effect, f.tool): f for f in report.flips}
    # The chair's $349, the desk's $250 and the two partial refunds.
    assert flips[("escalate", "allow", "issue_refund")].count == 4
    assert {(c.run_id, c.person, c.decided, c.candidate) for c in report.contradictions} == {
        (_run_of(history, "O-5005"), "olga", "rejected", "allow"),
        (_run_of(history, "O-5006", amount=180.0), "olga", "rejected", "allow"),
    }
    assert report.candidate_version is None
    assert report.candidate.startswith("document")


def test_raising_the_auto_refund_bound_to_200_on_the_demo(history: Engine) -> None:
    """The issue's example: v1 auto-refunds up to $100; a candidate raises it to $200."""
    tripwire = Tripwire()
    platform = Platform(history, tripwire.registry)
    candidate = (
        version_yaml("support-v1")
        .replace("when: args.amount <= 100.0", "when: args.amount <= 200.0")
        .replace("when: args.amount > 100.0 &&", "when: args.amount > 200.0 &&")
    )
    try:
        report = replay_policy(platform, ERIN, "support", candidate_yaml=candidate)
    finally:
        platform.close()
    assert tripwire.called == []
    approved, rejected = (_run_of(history, o, amount=a) for _, o, a, _ in PARTIALS)
    assert [
        (f.from_effect, f.to_effect, f.rule_id, f.tool, f.version, f.runs) for f in report.flips
    ] == [
        (
            "escalate",
            "allow",
            "refund-small",
            "issue_refund",
            1,
            tuple(sorted((approved, rejected))),
        )
    ]
    assert [(c.run_id, c.decided, c.candidate) for c in report.contradictions] == [
        (rejected, "rejected", "allow")
    ]
    assert report.executed_now_denied == ()
    days = report.queue["window_days"]
    assert report.queue["reviews_saved_per_day"] == pytest.approx(2 / days, abs=0.01)
    assert report.undecidable == {}


def test_executed_calls_a_candidate_would_deny_and_decisions_it_cannot_replay(
    history: Engine,
) -> None:
    platform = platform_for(history)
    stricter = version_yaml("support-v1").replace(
        "    - id: refund-small\n",
        "    - id: refund-cap\n"
        "      tool: issue_refund\n"
        "      when: args.amount > 300.0\n"
        "      effect: deny\n"
        "      reason: No refund over $300.\n"
        "    - id: close-if-few-refunds\n"
        "      tool: close_ticket\n"
        "      when: facts.refunds_today > 5\n"
        "      effect: escalate\n"
        "      reason: Many refunds today.\n"
        "    - id: refund-small\n",
    )
    report = replay_policy(platform, ERIN, "support", candidate_yaml=stricter)
    chair = _run_of(history, "O-5004")
    assert [(c["run_id"], c["rule_id"]) for c in report.executed_now_denied] == [
        (chair, "refund-cap")
    ]
    assert [(c.run_id, c.decided, c.candidate) for c in report.contradictions] == [
        (chair, "approved", "deny")
    ]
    (reason,) = [r for r in report.undecidable if "refunds_today" in r]
    assert reason == (
        "the candidate reads facts.refunds_today, which was not read when it was decided"
    )
    assert report.undecidable[reason] >= 1
    assert report.replayed == report.decisions - sum(report.undecidable.values())


def test_replay_checks_who_asks_and_what_is_asked(history: Engine) -> None:
    platform = platform_for(history)
    with pytest.raises(Forbidden):
        replay_policy(platform, OLGA, "support", candidate_version=2)
    with pytest.raises(InvalidInput, match="name one candidate"):
        replay_policy(platform, ERIN, "support")
    with pytest.raises(InvalidInput, match="365 days"):
        replay_policy(platform, ERIN, "support", candidate_version=2, since=timedelta(days=400))
    with pytest.raises(VersionSpecError) as raised:
        replay_policy(platform, ERIN, "support", candidate_yaml="policy: [unclosed\n")
    assert raised.value.line == 2
    assert "not valid YAML" in str(raised.value)
    # Decisions older than the window are not replayed.
    empty = replay_policy(
        platform,
        ERIN,
        "support",
        candidate_version=2,
        since=timedelta(minutes=1),
        now=_latest(history) + timedelta(days=2),
    )
    assert (empty.decisions, empty.flips) == (0, ())


def _latest(engine: Engine) -> Any:
    with read_session(engine) as session:
        return max(v.created_at for v in session.exec(select(AgentVersion)).all())


def test_the_cli_prints_and_saves_a_replay(history: Engine, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(
        version_yaml("support-v1")
        .replace("when: args.amount <= 100.0", "when: args.amount <= 500.0")
        .replace("when: args.amount > 100.0 &&", "when: args.amount > 500.0 &&"),
        encoding="utf-8",
    )

    shown = ok(steward(history, "policy", "replay", "support", "--candidate", "2", "--as", "erin"))
    assert "allow -> escalate  refund-needs-approval  issue_refund  v1: 3  runs " in shown
    as_json = steward(
        history,
        "policy",
        "replay",
        "support",
        "--candidate",
        str(candidate),
        "--since",
        "7d",
        "--json",
        "--as",
        "erin",
    )
    report = json.loads(ok(as_json))
    assert report["contradictions"][0]["decided"] == "rejected"
    listed = ok(steward(history, "policy", "replays", "support", "--json", "--as", "mona"))
    assert [r["id"] for r in json.loads(listed)][:2] == [report["id"], report["id"] - 1]
    for argv, words in (
        (("--candidate", "nope.yaml"), "neither a version number nor an existing file"),
        (("--candidate", "2", "--since", "30x"), "must be a window such as 30d"),
        (("--candidate", "99"), "has no version 99"),
    ):
        refused(steward(history, "policy", "replay", "support", *argv, "--as", "erin"), words)
    refused(
        steward(history, "policy", "replay", "support", "--candidate", "2", "--as", "olga"),
        "olga",
    )
