"""``steward versions gate | activate --override`` and ``steward agents release`` through a real
process, on a migrated demo database with a required suite and a real evaluation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from agent.demo.seed import seed_demo
from agent.evals.service import run_evaluation
from agent.evals.suites import create_suite
from agent.versions import create_version
from storage import migrate
from storage.engine import create_engine, read_session
from storage.models import AuditEvent
from tests.support.cli import ok, refused, steward
from tests.support.runtime import platform_for
from tests.test_evals_gate import ERIN, LEAKY, SUITE


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[Engine, int]]:
    """A migrated SQLite demo database (each command is a process start; the gate itself is
    tested on both databases) where support's suite ``gate`` is required and v3, a looser
    refund ceiling, was evaluated and failed its security case. Yields (engine, evaluation id).
    """
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    migrate.upgrade(engine)
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    create_suite(platform, ERIN, "support", "gate", SUITE)
    create_version(platform, ERIN, "support", LEAKY, note="a looser refund ceiling")
    (evaluation,) = run_evaluation(platform, ERIN, "support", version=3, suite="gate")
    yield engine, evaluation.id
    engine.dispose()


def test_the_gate_refuses_and_an_allowed_role_overrides(gated: tuple[Engine, int]) -> None:
    engine, evaluation_id = gated
    result = steward(engine, "versions", "gate", "support", "3", "--as", "mona", "--json")
    assert result.returncode == 1, result.stderr
    verdict = json.loads(result.stdout)
    assert (verdict["allowed"], verdict["version"]) == (False, 3)
    assert verdict["failing_cases"] == ["gate/injected-5000-rejected"]
    assert verdict["evaluation_ids"] == [evaluation_id]
    (suite,) = verdict["suites"]
    assert (suite["suite"], suite["pass_rate"], suite["evaluation_status"]) == (
        "gate",
        0.5,
        "failed",
    )
    text = steward(engine, "versions", "gate", "support", "3", "--as", "mona")
    assert text.returncode == 1
    assert text.stdout.startswith("support v3 (hash ")
    assert "may NOT be activated" in text.stdout
    assert f"suite gate: evaluation #{evaluation_id} failed, pass rate 50%" in text.stdout
    assert "failing cases: gate/injected-5000-rejected" in text.stdout
    # v1 is active (it was active before): the gate lets it through, exit 0.
    back = ok(steward(engine, "versions", "gate", "support", "1", "--as", "mona"))
    assert "may be activated" in back
    assert "was active before" in back

    activate = ("versions", "activate", "support", "3", "--reason", "ship it")
    refused(steward(engine, *activate, "--as", "erin"), "injected-5000-rejected")
    refused(steward(engine, *activate, "--as", "erin", "--override"), "name no role")

    release = ("agents", "release", "support")
    shown = ok(steward(engine, *release, "--as", "olga"))
    assert shown.startswith("support: no one may override the activation gate.\n")
    assert "at least 30 observations per arm" in shown  # the canary guard's defaults
    refused(
        steward(engine, *release, "--override-roles", "engineer,admin", "--as", "erin"),
        "needs the role admin",
    )
    refused(
        steward(engine, *release, "--override-roles", "engineer,boss", "--as", "ada"),
        "'boss' is not a role",
    )
    settings = json.loads(
        ok(steward(engine, *release, "--override-roles", "engineer,admin", "--as", "ada", "--json"))
    )
    assert (settings["agent"], settings["override_roles"]) == ("support", ["engineer", "admin"])
    assert settings["canary_guard"]["min_samples"] == 30
    refused(steward(engine, *activate, "--as", "mona", "--override"), "name only engineer or admin")

    deployed = json.loads(ok(steward(engine, *activate, "--as", "erin", "--override", "--json")))
    assert (deployed["action"], deployed["from_number"], deployed["to_number"]) == (
        "override_activate",
        1,
        3,
    )
    with read_session(engine) as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "version.override_activate")
        ).one()
    assert (event.actor, event.payload["reason"]) == ("erin", "ship it")
    assert event.payload["overridden_evaluations"] == [evaluation_id]

    # Rolling back is never gated.
    assert "rolled back v3 -> v1" in ok(
        steward(engine, "versions", "rollback", "support", "--reason", "undo", "--as", "erin")
    )
    history = ok(steward(engine, "versions", "history", "support", "--as", "mona"))
    assert "override_activate  v1 -> v3  by erin: ship it" in history
