"""Canary releases in the console: engineers start one on the Versions page (through the gate)
and promote it; operators see it and may abort it; the KPI page calls an automatic rollback out.
"""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from agent.actors import Actor
from agent.release.canary import check_canaries, set_canary_guard, start_canary
from agent.tasks import submit_task
from agent.versions import activate_version, create_agent, create_version
from storage.engine import read_session
from storage.enums import CanaryStatus
from storage.models import Agent, AgentVersion, Canary
from tests.support.canary import lookup_version
from tests.support.console import engine_for
from tests.support.pages import open_page
from tests.support.runtime import drive, platform_for

ERIN = Actor.of("erin", ["engineer"])
ADA = Actor.of("ada", ["admin"])
OLGA = Actor.of("olga", ["operator"])


def _canaries(url: str) -> list[tuple[int, CanaryStatus, str | None]]:
    engine = engine_for(url)
    with read_session(engine) as session:
        rows = session.exec(select(Canary).order_by(col(Canary.id))).all()
        numbers = {v.id: v.number for v in session.exec(select(AgentVersion)).all()}
    engine.dispose()
    return [(numbers[c.candidate_version_id], c.status, c.ended_by) for c in rows]


def _frame(at, first_column: str):  # type: ignore[no-untyped-def]
    return next(df.value for df in at.dataframe if df.value.columns[0] == first_column)


def test_an_engineer_starts_and_promotes_a_canary(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(
        monkeypatch, demo_url, "versions.py", user="erin", state={"versions.agent": "support"}
    )
    assert any("has had no canary release" in c.value for c in at.caption)
    at.selectbox(key="versions.canary_number").select(2)
    at.slider(key="versions.canary_share").set_value(20)
    at.text_input(key="versions.canary_reason").input("")
    at.button(key="versions.canary_start_go").click().run()
    assert any("No canary started. A reason is required" in e.value for e in at.error)
    assert _canaries(demo_url) == []

    at.text_input(key="versions.canary_reason").input("stricter refunds for a day")
    at.button(key="versions.canary_start_go").click().run()
    assert not at.exception, at.exception
    assert _canaries(demo_url) == [(2, CanaryStatus.RUNNING, None)]
    assert any("canary #1 started, 20% of new tasks on v2" in s.value for s in at.success)
    table = _frame(at, "figure")
    assert table["figure"].tolist()[:2] == ["completion rate", "escalation rate"]
    assert set(table["verdict"]) == {"… collecting"}
    # While it runs there is no start form, and Activate is refused with a sentence.
    assert not [b for b in at.button if b.key == "versions.canary_start_go"]

    at.text_input(key="versions.canary_promote_reason").input("no complaints")
    at.button(key="versions.canary_promote_go").click().run()
    assert not at.exception, at.exception
    assert _canaries(demo_url) == [(2, CanaryStatus.PROMOTED, "erin")]
    listed = _frame(at, "version")
    assert listed["active"].tolist()[0] == "● active"  # v2, newest first


def test_an_operator_sees_the_canary_and_may_only_abort_it(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(demo_url)
    start_canary(platform_for(engine), ERIN, "support", 2, share=10, reason="try v2")
    engine.dispose()
    at = open_page(
        monkeypatch, demo_url, "versions.py", user="olga", state={"versions.agent": "support"}
    )
    assert any("Canary #1: v2 takes 10% of new tasks" in i.value for i in at.info)
    keys = {b.key for b in at.button}
    assert "versions.canary_abort_go" in keys
    assert "versions.canary_promote_go" not in keys
    at.text_input(key="versions.canary_abort_reason").input("customers complain")
    at.button(key="versions.canary_abort_go").click().run()
    assert not at.exception, at.exception
    assert _canaries(demo_url) == [(2, CanaryStatus.ABORTED, "olga")]


def test_the_kpi_page_calls_an_automatic_rollback_out(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(demo_url)
    platform = platform_for(engine)
    create_agent(platform, ADA, "lookup")
    create_version(platform, ERIN, "lookup", lookup_version("allow"))
    create_version(platform, ERIN, "lookup", lookup_version("escalate"))
    activate_version(platform, ERIN, "lookup", 1, reason="first")
    set_canary_guard(platform, ADA, "lookup", ["min_samples=5"])
    start_canary(platform, ERIN, "lookup", 2, share=50, reason="escalate every lookup")
    for _ in range(30):
        submit_task(platform, OLGA, "lookup", {"intent": "lookup", "customer_id": "C-1001"})
    drive(engine, max_claims=100)
    assert len(check_canaries(platform).rolled_back) == 1
    with read_session(engine) as session:
        assert (
            session.exec(select(Agent).where(col(Agent.name) == "lookup")).one().canary_id is None
        )
    engine.dispose()

    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona")
    assert any(
        "lookup v2 was rolled back automatically" in e.value and "escalation rate" in e.value
        for e in at.error
    )
    table = _frame(at, "canary")
    assert table["status"].tolist() == ["rolled back (automatic)"]
    assert table["ended by"].tolist() == ["canary-guard"]
