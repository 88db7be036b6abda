"""The demo's release suites: what they hold, that the active versions pass them, that support
version 3's regression fails them where it should and version 4 passes, and that seeding them is
idempotent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from agent.actors import Actor
from agent.demo.release import RELEASE_VERSIONS, SUITES, suite_yaml
from agent.demo.seed import seed_demo
from agent.evals.document import parse_suite
from agent.evals.service import evaluation_results, list_evaluations, run_evaluation
from agent.plugins import installed_registry
from agent.versions import list_versions
from storage import migrate
from storage.engine import create_engine, read_session
from storage.enums import EvalRunStatus
from storage.models import Agent, AgentVersion, AuditEvent, EvalCase, EvalRun, EvalSuite, Task
from tests.support.runtime import platform_for

ERIN = Actor.of("erin", ["engineer"])
MONA = Actor.of("mona", ["manager"])
TAGS = {"normal", "edge", "security"}
# What support version 3 ("let small refunds through without review", auto-refunds up to $500)
# gets wrong: it pays amounts a person used to see.
V3_FAILURES = {
    "injected-amount-needs-a-person": "security",
    "chair-refund-approved": "normal",
    "desk-refund-edited": "normal",
    "approval-expires-then-tier-two-approves": "edge",
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One migrated SQLite file with the whole demo seeded as ``steward demo seed`` does: the
    release demo comes with the sample tasks (queued, not run)."""
    path = tmp_path_factory.mktemp("demo-suites") / "steward.db"
    engine = create_engine(f"sqlite:///{Path(path)}")
    migrate.upgrade(engine)
    seed_demo(platform_for(engine))
    yield engine
    engine.dispose()


def _cases(agent: str) -> list[dict[str, Any]]:
    parsed = parse_suite(suite_yaml(agent), registry=installed_registry())
    cases: list[dict[str, Any]] = parsed.document["cases"]
    return cases


@pytest.mark.parametrize("agent", list(SUITES))
def test_each_demo_suite_is_a_required_nightly_suite_of_every_tag(agent: str) -> None:
    parsed = parse_suite(suite_yaml(agent), registry=installed_registry())
    spec = parsed.spec
    assert (spec.required, spec.fixtures) == (True, "demo")
    assert 0 < spec.threshold <= 1
    assert spec.schedule is not None and spec.schedule.split()[2:] == ["*", "*", "*"]
    tags = Counter(tag for case in spec.cases for tag in case.tags)
    assert len(spec.cases) >= 15
    assert set(tags) == TAGS
    assert tags["security"] >= 4


@pytest.mark.parametrize("agent", list(SUITES))
def test_each_demo_suite_uses_every_expectation_and_every_reviewer_answer(agent: str) -> None:
    cases = _cases(agent)
    expects = [case["expect"] for case in cases]
    kinds = {key for expect in expects for key in expect}
    assert kinds >= {
        "status",
        "resolution",
        "error_class",
        "output",
        "output_schema",
        "output_cel",
        "trajectory",
        "governance",
        "side_effects",
        "limits",
    }
    governance = [e["governance"] for e in expects if "governance" in e]
    assert any(d.get("rule") for g in governance for d in g.get("decisions", ()))
    assert any(g.get("never") for g in governance)
    assert any(g.get("unauthorized_attempts") == 0 for g in governance)
    effects = [e["side_effects"] for e in expects if "side_effects" in e]
    assert any(s.get("must") for s in effects) and any(s.get("must_not") for s in effects)
    trajectories = [e["trajectory"] for e in expects if "trajectory" in e]
    matchers = {
        key
        for t in trajectories
        for call in t["calls"]
        for matcher in call.get("args", {}).values()
        if isinstance(matcher, dict)
        for key in matcher
    }
    assert matchers & {"equals", "tolerance", "pattern"} and "any" in matchers
    decisions = {answer["decision"] for case in cases for answer in case.get("reviewer", ())}
    assert decisions >= {"approve", "edit", "reject", "expire", "override"}


@pytest.mark.parametrize("agent", list(SUITES))
def test_every_case_passes_on_the_active_version(seeded: Engine, agent: str) -> None:
    platform = platform_for(seeded)
    with read_session(seeded) as session:
        active = session.exec(
            select(AgentVersion)
            .join(Agent, col(Agent.active_version_id) == col(AgentVersion.id))
            .where(col(Agent.name) == agent)
        ).one()
    on_active = [
        e for e in list_evaluations(platform, MONA, agent) if e.version_hash == active.content_hash
    ]
    assert len(on_active) == 1
    info, results = evaluation_results(platform, MONA, on_active[0].id)
    assert {r.case: r.failures for r in results if not r.passed} == {}
    assert [r.case for r in results] == [case["name"] for case in _cases(agent)]
    assert (info.status, info.failed) == (EvalRunStatus.PASSED, 0)
    assert info.summary["by_tag"] == {"edge": 1.0, "normal": 1.0, "security": 1.0}


def test_version_3_fails_security_and_normal_cases_that_pass_on_the_active_version(
    seeded: Engine,
) -> None:
    platform = platform_for(seeded)
    (v3,) = [e for e in list_evaluations(platform, MONA, "support") if e.version == 3]
    info, results = evaluation_results(platform, MONA, v3.id)
    failed = {r.case: r.failures for r in results if not r.passed}
    assert set(failed) == set(V3_FAILURES)
    assert info.status is EvalRunStatus.FAILED
    assert info.summary["security_failed"] == ["injected-amount-needs-a-person"]
    assert (
        "the gate decided issue_refund: allow by refund-small; expected escalate by rule "
        "refund-needs-approval" in failed["chair-refund-approved"]
    )
    assert (
        "support_refunds where amount_cents = 30000 holds 1 rows, and must hold none"
        in (failed["injected-amount-needs-a-person"])
    )


def test_version_4_is_left_unevaluated_and_passes_every_case(seeded: Engine) -> None:
    platform = platform_for(seeded)
    versions = list_versions(platform, ERIN, "support").items
    assert {v.number: v.is_active for v in versions} == {1: True, 2: False, 3: False, 4: False}
    assert [e.version for e in list_evaluations(platform, MONA, "support")].count(4) == 0
    (v4,) = run_evaluation(platform, ERIN, "support", version=4, suite="support", concurrency=4)
    _info, results = evaluation_results(platform, MONA, v4.id)
    assert {r.case: r.failures for r in results if not r.passed} == {}
    assert (v4.status, v4.passed) == (EvalRunStatus.PASSED, len(_cases("support")))


def test_seeding_again_stores_nothing_twice(seeded: Engine) -> None:
    def counts() -> dict[str, int]:
        with read_session(seeded) as session:
            return {
                model.__name__: session.exec(select(func.count()).select_from(model)).one()
                for model in (AgentVersion, EvalSuite, EvalCase, EvalRun, Task, AuditEvent)
            }

    before = counts()
    report = seed_demo(platform_for(seeded))
    assert (report.agents, report.tasks) == ([], 0)
    assert (report.versions, report.suites, report.evaluations) == ([], [], [])
    assert counts() == before
    assert before["EvalSuite"] == len(SUITES)
    assert before["AgentVersion"] == 4 + sum(len(v) for v in RELEASE_VERSIONS.values())


def test_a_bare_seed_has_no_release_demo(engine: Engine) -> None:
    """``--no-tasks`` seeds a bare installation: two versions each, no suites, no evaluations."""
    report = seed_demo(platform_for(engine), with_tasks=False)
    assert (report.versions, report.suites, report.evaluations) == ([], [], [])
    with read_session(engine) as session:
        assert session.exec(select(func.count()).select_from(EvalSuite)).one() == 0
        assert session.exec(select(func.count()).select_from(AgentVersion)).one() == 4
