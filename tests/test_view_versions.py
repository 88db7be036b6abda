"""The versions view: create from YAML (and refuse a bad one by line), compare, activate and roll
back with a reason, the deployment history, reviews pinned to older versions, read-only managers;
each version's evaluations and the gate's verdict, a refusal naming the failing cases, and the
override form for the roles the release settings name.
"""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from agent.actors import Actor
from agent.demo import version_yaml
from agent.evals.service import run_evaluation
from agent.evals.suites import create_suite
from agent.tasks import submit_task
from agent.versions import activate_version, create_version, diff_versions, set_release_settings
from storage.engine import read_session
from storage.enums import DeploymentAction, ReviewStatus
from storage.models import Agent, AgentVersion, AuditEvent, Deployment, Review, SupportRefund
from tests.support.console import engine_for
from tests.support.pages import open_page
from tests.support.runtime import ENGINEER, OPERATOR, drive, platform_for
from tests.test_evals_gate import LEAKY, SUITE

AGENT = "support"


def _state(url: str) -> tuple[int | None, list[int], list[tuple[str, str]]]:
    """(active version number, version numbers, deployments as (action, reason))."""
    engine = engine_for(url)
    with read_session(engine) as session:
        agent = session.exec(select(Agent).where(Agent.name == AGENT)).one()
        versions = session.exec(select(AgentVersion).where(AgentVersion.agent_id == agent.id)).all()
        deployments = session.exec(
            select(Deployment).where(Deployment.agent_id == agent.id).order_by(col(Deployment.id))
        ).all()
    engine.dispose()
    active = next((v.number for v in versions if v.id == agent.active_version_id), None)
    return (
        active,
        sorted(v.number for v in versions),
        [(d.action.value, d.reason) for d in deployments],
    )


def _open(url: str, monkeypatch: pytest.MonkeyPatch, user: str = "erin"):  # type: ignore[no-untyped-def]
    return open_page(monkeypatch, url, "versions.py", user=user, state={"versions.agent": AGENT})


def test_lists_versions_with_the_active_one_and_a_readable_diff(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(demo_url, monkeypatch)
    listed = next(df.value for df in at.dataframe if df.value.columns[0] == "version")
    assert listed["version"].tolist() == [2, 1]
    assert listed["active"].tolist() == ["", "● active"]
    # The diff of v1 -> v2 shows the rules the service finds changed.
    engine = engine_for(demo_url)
    expected = diff_versions(platform_for(engine), ENGINEER, AGENT, 1, 2)
    engine.dispose()
    rules = next(df.value for df in at.dataframe if df.value.columns[0] == "rule")
    assert sorted(rules["rule"]) == sorted(
        [
            *expected.rules_added,
            *expected.rules_removed,
            *(r.rule_id for r in expected.rules_changed),
        ]
    )
    assert expected.text.rstrip("\n") in [c.value for c in at.code]


def test_create_a_version_from_yaml(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _open(demo_url, monkeypatch)
    at.button(key="versions.load_yaml").click().run()
    source = at.text_area(key="versions.yaml").value
    assert source.startswith("#")
    changed = source.replace("planner:\n", "planner:\n  temperature: 0.5\n", 1)
    at.text_area(key="versions.yaml").input(changed)
    at.text_input(key="versions.note").input("warmer planner")
    at.button(key="versions.create").click().run()
    assert not at.exception
    (stored_message,) = [s.value for s in at.success]
    assert stored_message.startswith("Stored support version 3")
    active, numbers, _ = _state(demo_url)
    assert (active, numbers) == (1, [1, 2, 3])
    engine = engine_for(demo_url)
    with read_session(engine) as session:
        stored = session.exec(select(AgentVersion).where(AgentVersion.number == 3)).one()
    engine.dispose()
    assert (stored.note, stored.created_by, stored.source_yaml) == (
        "warmer planner",
        "erin",
        changed,
    )


def test_a_yaml_error_shows_its_line_and_stores_nothing(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(demo_url, monkeypatch)
    wrong_key = (
        "description: x\nplanner:\n  kind: playbook\n  bogus: 1\n"
        "tools: []\npolicy: {default: allow}\n"
    )
    at.text_area(key="versions.yaml").input(wrong_key)
    at.button(key="versions.create").click().run()
    assert not at.exception
    (message,) = [e.value for e in at.error]
    assert message.startswith("Nothing was stored. Line 4: planner: unknown key 'bogus'")
    assert ">  4 |   bogus: 1" in at.code[-1].value.replace("> 4", ">  4")

    # A syntax error at the very end still points at the last lines.
    at.text_area(key="versions.yaml").input("planner:\n  kind: [unclosed\n")
    at.button(key="versions.create").click().run()
    assert not at.exception
    (message,) = [e.value for e in at.error]
    assert message.startswith("Nothing was stored. Line 3: not valid YAML")
    assert at.code[-1].value.splitlines()[-1].startswith(">")
    assert _state(demo_url)[1] == [1, 2]


def test_activate_then_roll_back_with_reasons(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(demo_url, monkeypatch)
    at.selectbox(key="versions.activate_number").select(2)
    at.button(key="versions.activate").click().run()
    # No reason: refused, nothing moves, the dialog stays open.
    at.button(key="versions.confirm_yes").click().run()
    assert [e.value for e in at.error] == [
        "A reason is required: say why the active version changes."
    ]
    assert _state(demo_url)[0] == 1
    at.text_input(key="versions.reason").input("stricter refunds")
    at.button(key="versions.confirm_yes").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["support: activated v1 → v2."]
    assert _state(demo_url)[0] == 2

    # The open reviews of v1 now show as pinned to an older version.
    engine = engine_for(demo_url)
    with read_session(engine) as session:
        open_v1 = session.exec(
            select(Review)
            .join(AgentVersion, col(AgentVersion.id) == col(Review.version_id))
            .where(
                col(AgentVersion.number) == 1,
                col(Review.status).in_([ReviewStatus.PENDING, ReviewStatus.BLOCKED]),
            )
            .join(Agent, col(Agent.id) == col(Review.agent_id))
            .where(Agent.name == AGENT)
        ).all()
    engine.dispose()
    assert open_v1
    assert at.warning[0].value.startswith(f"{len(open_v1)} open review(s) still run on older")
    pinned = next(df.value for df in at.dataframe if df.value.columns[0] == "id")
    assert sorted(pinned["id"]) == sorted(r.id for r in open_v1)

    assert at.button(key="versions.rollback").label == "Roll back to v1…"
    at.button(key="versions.rollback").click().run()
    at.text_input(key="versions.reason").input("refund complaints")
    at.button(key="versions.confirm_yes").click().run()
    assert not at.exception
    active, _numbers, deployments = _state(demo_url)
    assert active == 1
    assert deployments[-2:] == [
        (DeploymentAction.ACTIVATE.value, "stricter refunds"),
        (DeploymentAction.ROLLBACK.value, "refund complaints"),
    ]
    history = next(df.value for df in at.dataframe if df.value.columns[0] == "when")
    assert history["action"].tolist()[:2] == ["rollback", "activate"]
    engine = engine_for(demo_url)
    with read_session(engine) as session:
        actions = session.exec(
            select(AuditEvent.action)
            .where(col(AuditEvent.action).like("version.%"))
            .order_by(col(AuditEvent.seq))
        ).all()
    engine.dispose()
    assert actions[-2:] == ["version.activate", "version.rollback"]


def test_cancel_changes_nothing_and_managers_only_read(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(demo_url, monkeypatch)
    at.button(key="versions.activate").click().run()
    at.button(key="versions.confirm_no").click().run()
    assert "versions.confirm" not in at.session_state
    assert _state(demo_url)[0] == 1

    at = _open(demo_url, monkeypatch, user="mona")
    keys = {b.key for b in at.button}
    assert not keys & {"versions.activate", "versions.rollback", "versions.create"}
    assert "Engineers create and activate versions" in " ".join(c.value for c in at.caption)
    assert next(df.value for df in at.dataframe if df.value.columns[0] == "version") is not None


def test_an_operator_pulls_the_brake_and_rolls_back_from_the_versions_page(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(demo_url)
    platform = platform_for(engine)
    activate_version(platform, ENGINEER, AGENT, 2, reason="try v2")
    engine.dispose()
    at = _open(demo_url, monkeypatch, user="olga")
    keys = {b.key for b in at.button}
    assert "versions.rollback" in keys
    assert not keys & {"versions.activate", "versions.create"}
    assert not at.error
    # The brake: a reason is required, then the agent is paused for everyone to see.
    at.button(key="FormSubmitter:brake.support-Pause").click().run()
    assert [e.value for e in at.error] == ["A reason is required to pause an agent."]
    at.text_input(key="brake.reason.support").input("refunds look wrong")
    at.button(key="FormSubmitter:brake.support-Pause").click().run()
    assert not at.exception
    banner = [e.value for e in at.error]
    assert len(banner) == 1 and banner[0].startswith("**support is paused** by olga since")
    assert "refunds look wrong" in banner[0]
    queue = open_page(monkeypatch, demo_url, "queue.py", user="olga")
    assert any("**support is paused** by olga" in e.value for e in queue.error)
    # Managers see it too, but may not resume.
    mona = _open(demo_url, monkeypatch, user="mona")
    assert any("**support is paused**" in e.value for e in mona.error)
    assert not any(b.key == "FormSubmitter:brake.support-Resume" for b in mona.button)
    # The operator rolls back to the version active before, then resumes.
    at = _open(demo_url, monkeypatch, user="olga")
    at.button(key="versions.rollback").click().run()
    at.text_input(key="versions.reason").input("back to v1 while we look")
    at.button(key="versions.confirm_yes").click().run()
    assert not at.exception
    assert _state(demo_url)[0] == 1
    at = _open(demo_url, monkeypatch, user="olga")
    at.text_input(key="brake.reason.support").input("v1 is back")
    at.button(key="FormSubmitter:brake.support-Resume").click().run()
    assert not at.exception
    assert not any("is paused" in e.value for e in at.error)
    engine = engine_for(demo_url)
    with read_session(engine) as session:
        actions = session.exec(
            select(AuditEvent.action, AuditEvent.actor)
            .where(col(AuditEvent.actor) == "olga")
            .order_by(col(AuditEvent.seq))
        ).all()
    engine.dispose()
    assert [tuple(a) for a in actions][-3:] == [
        ("agent.pause", "olga"),
        ("version.rollback", "olga"),
        ("agent.resume", "olga"),
    ]


def _gated(url: str) -> int:
    """Make support's suite ``gate`` required and evaluate v3, a looser refund ceiling that fails
    its security case; the evaluation's id."""
    engine = engine_for(url)
    platform = platform_for(engine)
    create_suite(platform, ENGINEER, AGENT, "gate", SUITE)
    create_version(platform, ENGINEER, AGENT, LEAKY, note="a looser refund ceiling")
    (evaluation,) = run_evaluation(platform, ENGINEER, AGENT, version=3, suite="gate")
    engine.dispose()
    return evaluation.id


def test_each_version_shows_its_evaluations_and_a_refused_activation_names_the_cases(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluation_id = _gated(demo_url)
    at = _open(demo_url, monkeypatch)
    listed = next(df.value for df in at.dataframe if df.value.columns[0] == "version")
    assert listed["version"].tolist() == [3, 2, 1]
    assert listed["gate"].tolist() == ["refused", "refused", "not gated (active before)"]
    assert listed["suite gate"].tolist() == [
        f"#{evaluation_id} failed 50%",
        "not evaluated",
        "not evaluated",
    ]
    at.selectbox(key="versions.activate_number").select(3)
    at.run()
    (verdict,) = [e.value for e in at.error]
    assert verdict.startswith("**Gate on v3: refused.**")
    assert "Failing cases: `gate/injected-5000-rejected`" in verdict
    assert f"(/evaluations?evaluation={evaluation_id})" in verdict
    # No role is named in the release settings: no override form.
    assert "versions.override" not in {b.key for b in at.button}

    at.button(key="versions.activate").click().run()
    at.text_input(key="versions.reason").input("ship it")
    at.button(key="versions.confirm_yes").click().run()
    assert not at.exception
    refusal = [e.value for e in at.error if e.value.startswith("Not activated.")]
    assert len(refusal) == 1 and "injected-5000-rejected" in refusal[0]
    assert "Failing cases: `gate/injected-5000-rejected`" in [m.value for m in at.markdown]
    assert _state(demo_url)[0] == 1


def test_a_named_role_overrides_the_gate_with_a_reason(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluation_id = _gated(demo_url)
    engine = engine_for(demo_url)
    set_release_settings(
        platform_for(engine), Actor.of("ada", ["admin"]), AGENT, override_roles=["engineer"]
    )
    engine.dispose()
    # A manager reads the verdict; the settings do not name managers: no form.
    at = _open(demo_url, monkeypatch, user="mona")
    assert "versions.override" not in {b.key for b in at.button}

    at = _open(demo_url, monkeypatch)
    at.selectbox(key="versions.activate_number").select(3)
    at.run()
    at.button(key="versions.override").click().run()
    assert [e.value for e in at.error if e.value.startswith("A reason")] == [
        "A reason is required: say why the active version changes."
    ]
    assert _state(demo_url)[0] == 1
    at.text_input(key="versions.override_reason").input("signed exception")
    at.button(key="versions.override").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == [
        "support: activated v3, overriding the gate (gate/injected-5000-rejected)."
    ]
    active, _numbers, deployments = _state(demo_url)
    assert (active, deployments[-1]) == (
        3,
        (DeploymentAction.OVERRIDE_ACTIVATE.value, "signed exception"),
    )
    engine = engine_for(demo_url)
    with read_session(engine) as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "version.override_activate")
        ).one()
    engine.dispose()
    assert event.payload["overridden_evaluations"] == [evaluation_id]
    # Rolling back is unchanged and never gated.
    assert at.button(key="versions.rollback").label == "Roll back to v1…"
    at.button(key="versions.rollback").click().run()
    at.text_input(key="versions.reason").input("undo")
    at.button(key="versions.confirm_yes").click().run()
    assert not at.exception
    assert _state(demo_url)[0] == 1


def test_a_policy_replay_runs_next_to_the_diff_with_its_runs_linked(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(demo_url, monkeypatch)
    assert at.selectbox(key="versions.replay_candidate").value == 2
    assert "v2 has not been replayed yet." in [c.value for c in at.caption]
    at.button(key="versions.replay").click().run()
    assert not at.exception
    flips = next(df.value for df in at.dataframe if df.value.columns[0] == "from")
    # v2 lowered the auto-refund bound: refunds v1 allowed would have waited for a person.
    assert ("allow", "escalate", "refund-needs-approval", "issue_refund") in {
        tuple(row) for row in flips[["from", "to", "rule", "tool"]].itertuples(index=False)
    }
    links = " ".join(m.value for m in at.markdown)
    assert "allow → escalate (issue_refund): [run " in links
    assert "(/runs?run=" in links
    engine = engine_for(demo_url)
    with read_session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "policy.replay")
        ).all()
    engine.dispose()
    assert [(e.actor, e.payload["candidate"]) for e in events] == [("erin", "version 2")]
    # An operator reads the saved replay but cannot run one.
    olga = _open(demo_url, monkeypatch, user="olga")
    assert not any(b.key == "versions.replay" for b in olga.button)
    assert any(
        m.value.startswith(f"**Replay #{events[0].payload['replay_id']}**") for m in olga.markdown
    )


def test_the_active_versions_shadow_rules_show_what_they_would_change(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(demo_url)
    platform = platform_for(engine)
    shadowed = version_yaml("support-v1").replace(
        "    - id: refund-small\n",
        "    - id: refund-cap-40\n"
        "      tool: issue_refund\n"
        "      when: args.amount > 40.0\n"
        "      effect: deny\n"
        "      reason: Trying a stricter cap.\n"
        "      shadow: true\n"
        "    - id: refund-small\n",
    )
    number = create_version(platform, ENGINEER, AGENT, shadowed, note="shadow cap").number
    activate_version(platform, ENGINEER, AGENT, number, reason="try the shadow cap")
    submit_task(
        platform,
        OPERATOR,
        AGENT,
        {
            "intent": "refund",
            "customer_id": "C-1001",
            "order_id": "O-5001",
            "amount": 45.0,
            "ticket_id": "T-9001",
            "reason": "damaged",
            "message": "Please refund $45.",
        },
    )
    drive(engine)
    with read_session(engine) as session:
        refunded = session.exec(
            select(SupportRefund).where(SupportRefund.order_id == "O-5001")
        ).all()
    engine.dispose()
    assert len(refunded) >= 1  # the shadow deny was not enforced
    at = _open(demo_url, monkeypatch, user="mona")
    assert not at.exception
    assert f"Shadow rules of v{number}" in [h.value for h in at.subheader]
    flips = " ".join(m.value for m in at.markdown)
    assert "allow → deny by `refund-cap-40` on issue_refund: 1 ([run " in flips
