"""Canary releases: a share of new tasks routed to a candidate by task, through the gate; a
guard comparing the arms on governance health that rolls a significantly worse candidate back
by itself (recorded and audited); promote and abort as people's explicit actions; reviews pinned
to the version that raised them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import Actor
from agent.demo.seed import seed_demo
from agent.errors import Forbidden, GateRefused, InvalidInput
from agent.evals.suites import create_suite
from agent.platform import Platform
from agent.release.canary import (
    GUARD_ACTOR,
    abort_canary,
    canary_status,
    check_canaries,
    list_canaries,
    promote_canary,
    set_canary_guard,
    start_canary,
)
from agent.release.guard import CanaryGuard, compare
from agent.reviews import approve
from agent.runtime.routing import BUCKETS, canary_bucket, routes_to_candidate
from agent.tasks import submit_task
from agent.versions import (
    activate_version,
    create_agent,
    create_version,
    rollback,
    set_release_settings,
)
from storage.engine import read_session
from storage.enums import CanaryStatus, DeploymentAction, ReviewStatus, RunStatus, TaskStatus
from storage.models import (
    Agent,
    AgentVersion,
    AuditEvent,
    Canary,
    Deployment,
    Review,
    Run,
    Task,
)
from storage.queries.canary import ReviewObservation, RunObservation
from tests.support.canary import lookup_version
from tests.support.cli import ok, refused, steward
from tests.support.runtime import drive, platform_for
from tests.test_evals_gate import SUITE

ERIN = Actor.of("erin", ["engineer"])
OLGA = Actor.of("olga", ["operator"])
MONA = Actor.of("mona", ["manager"])
ADA = Actor.of("ada", ["admin"])
ROOT = Path(__file__).resolve().parents[1]


def _lookup_agent(platform: Platform, *, min_samples: int = 10) -> None:
    """Agent ``lookup`` beside the demo (its customers are looked up): v1 (active) allows its
    one call, v2 escalates it."""
    seed_demo(platform, with_tasks=False)
    create_agent(platform, ADA, "lookup")
    create_version(platform, ERIN, "lookup", lookup_version("allow"), note="allows")
    create_version(platform, ERIN, "lookup", lookup_version("escalate"), note="escalates")
    activate_version(platform, ERIN, "lookup", 1, reason="first")
    set_canary_guard(platform, ADA, "lookup", [f"min_samples={min_samples}"])


def _submit(platform: Platform, count: int) -> list[int]:
    return [
        submit_task(platform, OLGA, "lookup", {"intent": "lookup", "customer_id": "C-1001"})
        for _ in range(count)
    ]


def _runs(engine: Engine) -> list[Run]:
    with read_session(engine) as session:
        return list(session.exec(select(Run).order_by(col(Run.id))).all())


def _version_ids(engine: Engine) -> dict[int, int]:
    with read_session(engine) as session:
        rows = session.exec(select(Agent)).all()
        agent = next(a for a in rows if a.name == "lookup")
        versions = session.exec(
            select(AgentVersion).where(col(AgentVersion.agent_id) == agent.id)
        ).all()
        return {v.number: v.id or 0 for v in versions}


def _audit(engine: Engine, prefix: str) -> list[AuditEvent]:
    with read_session(engine) as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(col(AuditEvent.action).startswith(prefix))
                .order_by(col(AuditEvent.id))
            ).all()
        )


# -- routing --------------------------------------------------------------------------------


def test_routing_is_decided_by_the_task_and_close_to_the_share() -> None:
    assert canary_bucket(7, 1234) == canary_bucket(7, 1234)
    assert all(0 <= canary_bucket(3, task) < BUCKETS for task in range(1000))
    routed = sum(routes_to_candidate(3, task, 20) for task in range(20_000))
    assert 0.18 < routed / 20_000 < 0.22
    # Another canary draws another sample of the same tasks.
    first = {task for task in range(2000) if routes_to_candidate(1, task, 20)}
    second = {task for task in range(2000) if routes_to_candidate(2, task, 20)}
    assert first != second
    assert not any(routes_to_candidate(1, task, 0) for task in range(1000))


# -- the guard's statistics ------------------------------------------------------------------


def _run(
    run_id: int, version: int, *, escalated: bool = False, cost: float = 0.0, ms: float = 10.0
) -> RunObservation:
    return RunObservation(
        run_id=run_id,
        version_id=version,
        status=RunStatus.WAITING_REVIEW if escalated else RunStatus.SUCCEEDED,
        escalated=escalated,
        denied=False,
        tool_error=False,
        cost_usd=cost,
        agent_time_ms=ms,
    )


def _figure(comparison: object, key: str) -> dict[str, object]:
    figures = comparison.as_dict()["figures"]  # type: ignore[attr-defined]
    return next(f for f in figures if f["key"] == key)


def test_a_far_worse_candidate_breaches_once_both_arms_have_their_samples() -> None:
    guard = CanaryGuard.from_dict({"min_samples": 10})
    baseline = [_run(i, 1) for i in range(40)]
    candidate = [_run(100 + i, 2, escalated=True) for i in range(9)]
    collecting = compare(
        baseline + candidate, [], baseline_version_id=1, candidate_version_id=2, guard=guard
    )
    assert collecting.state == "collecting"
    assert _figure(collecting, "escalation_rate")["state"] == "collecting"

    candidate.append(_run(200, 2, escalated=True))
    breach = compare(
        baseline + candidate, [], baseline_version_id=1, candidate_version_id=2, guard=guard
    )
    escalation = _figure(breach, "escalation_rate")
    assert breach.state == "breach"
    assert (escalation["baseline"], escalation["candidate"]) == (0.0, 1.0)
    assert (escalation["baseline_n"], escalation["candidate_n"]) == (40, 10)
    assert escalation["p_value"] < breach.corrected_alpha  # type: ignore[operator]
    assert "escalation rate 100% against 0%" in breach.summary()


def test_a_difference_below_the_threshold_or_not_significant_is_no_breach() -> None:
    guard = CanaryGuard.from_dict({"min_samples": 10})
    # 2 of 40 against 1 of 40: under the 10-point threshold.
    small = [_run(i, 1, escalated=i < 1) for i in range(40)]
    small += [_run(100 + i, 2, escalated=i < 2) for i in range(40)]
    assert compare(small, [], baseline_version_id=1, candidate_version_id=2, guard=guard).state == (
        "healthy"
    )
    # 4 of 10 against 2 of 10: over the threshold, but not significant on so few runs.
    noisy = [_run(i, 1, escalated=i < 2) for i in range(10)]
    noisy += [_run(100 + i, 2, escalated=i < 4) for i in range(10)]
    result = compare(noisy, [], baseline_version_id=1, candidate_version_id=2, guard=guard)
    assert _figure(result, "escalation_rate")["state"] == "ok"
    # A figure the settings do not guard never breaches.
    off = CanaryGuard.from_dict({"min_samples": 10}).with_changes(["escalation_rate=off"])
    far = [_run(i, 1) for i in range(20)] + [_run(100 + i, 2, escalated=True) for i in range(20)]
    result = compare(far, [], baseline_version_id=1, candidate_version_id=2, guard=off)
    assert _figure(result, "escalation_rate")["state"] == "not guarded"
    assert result.state == "healthy"


def test_cost_latency_and_reviewer_figures_are_compared_in_their_own_terms() -> None:
    guard = CanaryGuard.from_dict({"min_samples": 10})
    runs = [_run(i, 1, cost=0.01, ms=100 + i) for i in range(30)]
    runs += [_run(100 + i, 2, cost=0.05, ms=400 + i) for i in range(30)]
    reviews = [ReviewObservation(i, 1, ReviewStatus.APPROVED) for i in range(20)]
    reviews += [
        ReviewObservation(100 + i, 2, ReviewStatus.EDITED if i < 12 else ReviewStatus.APPROVED)
        for i in range(20)
    ]
    result = compare(runs, reviews, baseline_version_id=1, candidate_version_id=2, guard=guard)
    assert {f.key for f in result.breaches} == {"cost_per_task", "latency_p95", "edit_rate"}
    cost = _figure(result, "cost_per_task")
    assert cost["baseline"] == pytest.approx(0.01) and cost["candidate"] == pytest.approx(0.05)
    assert _figure(result, "edit_rate")["candidate"] == pytest.approx(0.6)
    assert _figure(result, "override_rate")["state"] == "ok"


def test_guard_settings_refuse_what_they_cannot_mean() -> None:
    guard = CanaryGuard.from_dict({})
    assert guard.min_samples == 30 and guard.alpha == 0.05
    changed = guard.with_changes(["deny_rate=0.2", "min_samples=50", "alpha=0.01"])
    assert (changed.thresholds["deny_rate"], changed.min_samples, changed.alpha) == (0.2, 50, 0.01)
    assert CanaryGuard.from_dict(changed.as_dict()) == changed
    for bad, message in (
        (["speed=0.1"], "'speed' is not a guard setting"),
        (["deny_rate"], "is not KEY=VALUE"),
        (["deny_rate=2"], "a share from 0 to 1"),
        (["min_samples=2"], "from 5 to 100000"),
        (["alpha=0.5"], "at most 0.2"),
        (["cost_per_task=cheap"], "must be a number"),
        (["latency_p95=nan"], "finite"),
    ):
        with pytest.raises(InvalidInput, match=message):
            guard.with_changes(bad)


# -- the service on a real database ---------------------------------------------------------


def test_tasks_go_to_the_candidate_by_task_and_a_breach_rolls_the_canary_back(
    engine: Engine,
) -> None:
    platform = platform_for(engine)
    _lookup_agent(platform)
    versions = _version_ids(engine)
    canary = start_canary(platform, ERIN, "lookup", 2, share=20, reason="stricter lookups")
    assert (canary.candidate, canary.baseline, canary.share) == (2, 1, 20)
    assert canary.guard["min_samples"] == 10
    task_ids = _submit(platform, 80)
    drive(engine, max_claims=200)

    runs = _runs(engine)
    assert len(runs) == 80
    for run in runs:
        expected = 2 if routes_to_candidate(canary.id, run.task_id, 20) else 1
        assert run.version_id == versions[expected], run.task_id
        assert run.canary_id == canary.id
    on_candidate = [r for r in runs if r.version_id == versions[2]]
    assert 10 <= len(on_candidate) <= 26
    assert {r.status for r in on_candidate} == {RunStatus.WAITING_REVIEW}
    assert {r.status for r in runs if r.version_id == versions[1]} == {RunStatus.SUCCEEDED}

    live = canary_status(platform, MONA, "lookup")
    assert live is not None and live.running
    assert live.comparison["state"] == "breach"
    assert live.comparison["candidate_runs"] == len(on_candidate)

    rolled = check_canaries(platform)
    assert [c.id for c in rolled.rolled_back] == [canary.id]
    assert rolled.running == 0
    assert check_canaries(platform).rolled_back == ()  # once
    ended = canary_status(platform, MONA, "lookup")
    assert ended is not None
    assert (ended.status, ended.ended_by, ended.automatic) == (
        CanaryStatus.ROLLED_BACK,
        GUARD_ACTOR,
        True,
    )
    assert ended.end_reason.startswith("rolled back automatically: the candidate is")
    assert [f["key"] for f in ended.comparison["figures"] if f["state"] == "breach"] == [
        "escalation_rate"
    ]
    events = _audit(engine, "canary.")
    assert [(e.action, e.actor) for e in events] == [
        ("canary.start", "erin"),
        ("canary.rolled_back", GUARD_ACTOR),
    ]
    assert events[1].payload["automatic"] is True

    # From the rollback on, every new task runs on the baseline, outside any canary.
    _submit(platform, 20)
    drive(engine, max_claims=50)
    later = [r for r in _runs(engine) if r.task_id > max(task_ids)]
    assert len(later) == 20
    assert {(r.version_id, r.canary_id) for r in later} == {(versions[1], None)}

    # The candidate's reviews stay pinned to it: approving one resumes its run on v2.
    with read_session(engine) as session:
        review = session.exec(
            select(Review).where(col(Review.status) == ReviewStatus.PENDING).limit(1)
        ).one()
    assert review.version_id == versions[2]
    assert review.id is not None
    approve(platform, OLGA, review.id)
    drive(engine, max_claims=10)
    with read_session(engine) as session:
        run = session.get(Run, review.run_id)
    assert run is not None
    assert (run.status, run.version_id) == (RunStatus.SUCCEEDED, versions[2])


def test_people_promote_and_abort_and_a_rollback_ends_a_canary(engine: Engine) -> None:
    platform = platform_for(engine)
    _lookup_agent(platform)
    create_version(
        platform,
        ERIN,
        "lookup",
        lookup_version("allow").replace("customer.", "customer, politely."),
        note="v3",
    )
    start_canary(platform, ERIN, "lookup", 2, share=10, reason="try v2")
    with pytest.raises(InvalidInput, match="already running"):
        start_canary(platform, ERIN, "lookup", 3, share=10, reason="and v3")
    with pytest.raises(InvalidInput, match="promote or abort it before activating"):
        activate_version(platform, ERIN, "lookup", 3, reason="skip ahead")
    with pytest.raises(Forbidden):
        abort_canary(platform, MONA, "lookup", reason="managers do not abort")
    aborted = abort_canary(platform, OLGA, "lookup", reason="customers complain")
    assert (aborted.status, aborted.ended_by) == (CanaryStatus.ABORTED, "olga")
    with pytest.raises(InvalidInput, match="has no canary running"):
        abort_canary(platform, OLGA, "lookup", reason="again")

    start_canary(platform, ERIN, "lookup", 2, share=30, reason="try v2 again")
    with pytest.raises(Forbidden):
        promote_canary(platform, OLGA, "lookup", reason="operators do not promote")
    promoted = promote_canary(platform, ERIN, "lookup", reason="looks good")
    assert promoted.status is CanaryStatus.PROMOTED
    with read_session(engine) as session:
        agent = session.exec(select(Agent).where(col(Agent.name) == "lookup")).one()
        deployment = session.exec(select(Deployment).order_by(col(Deployment.id).desc())).first()
    assert agent.canary_id is None
    assert agent.active_version_id == _version_ids(engine)[2]
    assert deployment is not None and deployment.action is DeploymentAction.ACTIVATE
    activation = _audit(engine, "version.activate")[-1]
    assert activation.payload["canary_id"] == promoted.id

    # A rollback, the emergency lever, ends a running canary as it moves the pointer back.
    start_canary(platform, ERIN, "lookup", 3, share=10, reason="try v3")
    rollback(platform, OLGA, "lookup", reason="incident")
    history = list_canaries(platform, MONA, "lookup")
    assert [(c.candidate, c.status) for c in history] == [
        (3, CanaryStatus.ABORTED),
        (2, CanaryStatus.PROMOTED),
        (2, CanaryStatus.ABORTED),
    ]
    assert history[0].end_reason == "ended by a rollback: incident"
    assert [e.action for e in _audit(engine, "canary.")] == [
        "canary.start",
        "canary.aborted",
        "canary.start",
        "canary.promoted",
        "canary.start",
        "canary.aborted",
    ]


def test_a_canary_is_refused_what_makes_no_sense(engine: Engine) -> None:
    platform = platform_for(engine)
    _lookup_agent(platform)
    with pytest.raises(Forbidden):
        start_canary(platform, OLGA, "lookup", 2, share=10, reason="operators do not release")
    for share in (0, 51, 100):
        with pytest.raises(InvalidInput, match="from 1 to 50"):
            start_canary(platform, ERIN, "lookup", 2, share=share, reason="x")
    with pytest.raises(InvalidInput, match="reason is required"):
        start_canary(platform, ERIN, "lookup", 2, share=10, reason=" ")
    with pytest.raises(InvalidInput, match="already the active version"):
        start_canary(platform, ERIN, "lookup", 1, share=10, reason="same")
    with pytest.raises(Forbidden):
        set_canary_guard(platform, ERIN, "lookup", ["min_samples=5"])
    with read_session(engine) as session:
        assert session.exec(select(Canary)).all() == []


def test_starting_a_canary_goes_through_the_gate(engine: Engine) -> None:
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    create_suite(platform, ERIN, "support", "gate", SUITE)
    with pytest.raises(GateRefused, match="no finished evaluation"):
        start_canary(platform, ERIN, "support", 2, share=10, reason="untested")
    with pytest.raises(Forbidden, match="may not override the activation gate"):
        start_canary(platform, ERIN, "support", 2, share=10, reason="untested", override=True)
    set_release_settings(platform, ADA, "support", override_roles=["engineer"])
    canary = start_canary(
        platform, ERIN, "support", 2, share=10, reason="hotfix, evaluated by hand", override=True
    )
    assert canary.gate["override"] is True
    start = _audit(engine, "canary.start")[-1]
    assert start.payload["gate"]["override"] is True
    # Promoting is an activation: the gate is asked again.
    with pytest.raises(GateRefused):
        promote_canary(platform, ERIN, "support", reason="go")
    promoted = promote_canary(platform, ERIN, "support", reason="go", override=True)
    assert promoted.status is CanaryStatus.PROMOTED
    with read_session(engine) as session:
        deployment = session.exec(select(Deployment).order_by(col(Deployment.id).desc())).first()
    assert deployment is not None
    assert deployment.action is DeploymentAction.OVERRIDE_ACTIVATE


# -- the CLI and a real worker -------------------------------------------------------------


def _wait_for(done: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _canary_row(engine: Engine) -> Canary:
    with read_session(engine) as session:
        return session.exec(select(Canary).order_by(col(Canary.id).desc())).one()


def _queued(engine: Engine) -> int:
    with read_session(engine) as session:
        return len(session.exec(select(Task.id).where(col(Task.status) == TaskStatus.QUEUED)).all())


@pytest.mark.slow
def test_a_real_worker_rolls_back_a_canary_that_escalates_far_more(migrated: Engine) -> None:
    platform = platform_for(migrated)
    _lookup_agent(platform, min_samples=30)  # the CLI sets it to 10 below
    versions = _version_ids(migrated)

    refused(
        steward(
            migrated, "agents", "release", "lookup", "--canary-guard", "alpha=1", "--as", "ada"
        ),
        "alpha is a significance level",
    )
    shown = json.loads(
        ok(
            steward(
                migrated,
                *("agents", "release", "lookup", "--canary-guard", "min_samples=10"),
                *("--json", "--as", "ada"),
            )
        )
    )
    assert shown["canary_guard"]["min_samples"] == 10
    refused(
        steward(
            migrated,
            *(
                "versions",
                "canary",
                "lookup",
                "2",
                "--share",
                "80",
                "--reason",
                "x",
                "--as",
                "erin",
            ),
        ),
        "from 1 to 50",
    )
    started = json.loads(
        ok(
            steward(
                migrated,
                *("versions", "canary", "lookup", "2", "--share", "20"),
                *("--reason", "stricter lookups", "--json", "--as", "erin"),
            )
        )
    )
    assert (started["status"], started["share"]) == ("running", 20)

    worker = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "worker", "--concurrency", "4", "--poll", "0.05"],
        cwd=ROOT,
        env={
            **os.environ,
            "STEWARD_DATABASE_URL": migrated.url.render_as_string(hide_password=False),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        submitted = 0

        def rolled_back() -> bool:
            nonlocal submitted
            if _canary_row(migrated).status is not CanaryStatus.RUNNING:
                return True
            if _queued(migrated) < 5 and submitted < 600:
                _submit(platform, 10)
                submitted += 10
            return False

        _wait_for(rolled_back, "the guard to roll the canary back")
        canary = _canary_row(migrated)
        assert (canary.status, canary.ended_by) == (CanaryStatus.ROLLED_BACK, GUARD_ACTOR)
        # Within the configured sample size: the guard acted on its first significant look,
        # not after the whole batch.
        assert canary.verdict["candidate_runs"] >= 10
        assert canary.verdict["candidate_runs"] <= 2 * 10, canary.verdict["candidate_runs"]
        breaches = [f for f in canary.verdict["figures"] if f["state"] == "breach"]
        assert [f["key"] for f in breaches] == ["escalation_rate"]
        assert breaches[0]["candidate"] == 1.0 and breaches[0]["baseline"] == 0.0

        # After the rollback the worker sends every new task to the baseline.
        ended_at = canary.ended_at
        before = {r.id for r in _runs(migrated)}
        new_tasks = set(_submit(platform, 20))
        _wait_for(
            lambda: {r.task_id for r in _runs(migrated) if r.id not in before} >= new_tasks,
            "the new tasks to start",
        )
        later = [r for r in _runs(migrated) if r.task_id in new_tasks]
        assert {(r.version_id, r.canary_id) for r in later} == {(versions[1], None)}
        assert ended_at is not None and all(r.created_at >= ended_at for r in later)
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    status = json.loads(
        ok(steward(migrated, "versions", "canary-status", "lookup", "--json", "--as", "mona"))
    )
    assert (status["status"], status["automatic"]) == ("rolled_back", True)
    text = ok(steward(migrated, "versions", "canary-status", "lookup", "--as", "mona"))
    assert "rolled_back" in text and "escalation rate" in text and "breach" in text
    audit = _audit(migrated, "canary.")
    assert [(e.action, e.actor) for e in audit] == [
        ("canary.start", "erin"),
        ("canary.rolled_back", GUARD_ACTOR),
    ]
