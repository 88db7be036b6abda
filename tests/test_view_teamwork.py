"""The queue and run pages as a team works them, in AppTest on a copy of the seeded demo:
four-eyes approvals, taking a review and "next review", and Undo on a run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest

from agent.notify import notify_once
from agent.plugins import installed_registry
from storage.engine import read_session
from storage.enums import ReviewStatus, RunStatus, ToolCallStatus
from storage.models import Compensation, NotifySettings, Review, Run, ToolCall
from tests.support.console import engine_for, open_console
from tests.support.runtime import drive, platform_for


@pytest.fixture
def db(demo_url: str) -> Iterator[Engine]:
    engine = engine_for(demo_url)
    yield engine
    engine.dispose()


def _review(engine: Engine, rule: str) -> Review:
    with read_session(engine) as session:
        return session.exec(
            select(Review)
            .where(col(Review.rule_id) == rule)
            .where(col(Review.status).in_(ReviewStatus.open_statuses()))
            .order_by(col(Review.id))
        ).first() or pytest.fail(f"the demo has no open review of {rule}")


def _reload(engine: Engine, review_id: int) -> Review:
    with read_session(engine) as session:
        found = session.get(Review, review_id)
    assert found is not None
    return found


def _queue(monkeypatch: pytest.MonkeyPatch, url: str, user: str) -> AppTest:
    return open_console(monkeypatch, url, user=user, page="queue.py")


def _open(at: AppTest, review_id: int) -> AppTest:
    at.selectbox(key="queue.open").set_value(review_id).run()
    assert not at.exception, at.exception
    return at


def _texts(elements: object) -> str:
    return " ".join(str(e.value) for e in elements)  # type: ignore[attr-defined]


def _frame(at: AppTest, first_column: str) -> pd.DataFrame:
    tables = [df.value for df in at.dataframe]
    return next(t for t in tables if len(t.columns) and t.columns[0] == first_column)


def test_four_eyes_in_the_queue_submitter_refused_two_people_approve(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    payroll = _review(db, "grant-payroll-admin-four-eyes")
    assert payroll.id is not None and payroll.approvals_required == 2

    olga = _open(_queue(monkeypatch, demo_url, "olga"), payroll.id)
    keys = {b.key for b in olga.button}
    assert "queue.approve" not in keys and "queue.edit_approve" not in keys
    assert "queue.reject" in keys  # the submitter may still say no
    assert "olga submitted task" in _texts(olga.caption)
    assert "needs 2 people to approve; approved by nobody (0 of 2)" in _texts(olga.info)

    oscar = _open(_queue(monkeypatch, demo_url, "oscar"), payroll.id)
    oscar.button(key="queue.approve").click().run()
    assert not oscar.exception, oscar.exception
    assert "approved by oscar (1 of 2); the call waits for another approval" in _texts(oscar.info)
    assert _reload(db, payroll.id).status is ReviewStatus.PENDING
    row = _frame(oscar, "review").set_index("review").loc[payroll.id]
    assert row["approvals"] == "1 of 2: oscar"
    assert "queue.approve" not in {b.key for b in oscar.button}  # he already approved
    assert "oscar already approved review" in _texts(oscar.caption)

    otto = _open(_queue(monkeypatch, demo_url, "otto"), payroll.id)
    otto.button(key="queue.approve").click().run()
    assert not otto.exception, otto.exception
    decided = _reload(db, payroll.id)
    assert (decided.status, decided.approved_by) == (ReviewStatus.APPROVED, ["oscar", "otto"])
    assert drive(db, installed_registry()) == [RunStatus.SUCCEEDED]
    with read_session(db) as session:
        grants = session.exec(
            select(ToolCall)
            .where(col(ToolCall.run_id) == payroll.run_id)
            .where(col(ToolCall.tool) == "grant_access")
        ).all()
    assert [g.status for g in grants] == [ToolCallStatus.SUCCEEDED]


def test_take_a_review_and_next_review_in_the_queue(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    oscar = _queue(monkeypatch, demo_url, "oscar")
    oscar.button(key="queue.next").click().run()
    assert not oscar.exception, oscar.exception
    taken = oscar.session_state["queue.opened"]
    assert isinstance(taken, int)
    assert f"Review {taken} is yours until" in _texts(oscar.success)
    assert _reload(db, taken).assigned_to == "oscar"
    assert "queue.release" in {b.key for b in oscar.button}

    otto = _open(_queue(monkeypatch, demo_url, "otto"), taken)
    assert "Taken by oscar · 0 min." in _texts(otto.caption)
    assert "queue.take" not in {b.key for b in otto.button}
    assert _frame(otto, "review").set_index("review").loc[taken]["taken by"] == "oscar · 0 min"
    otto.button(key="queue.next").click().run()
    assert not otto.exception, otto.exception
    second = otto.session_state["queue.opened"]
    assert isinstance(second, int) and second != taken
    assert _reload(db, second).assigned_to == "otto"

    oscar.button(key="queue.release").click().run()
    assert not oscar.exception, oscar.exception
    assert f"Review {taken} is back in the pool" in _texts(oscar.success)
    assert _reload(db, taken).assigned_to is None
    oscar.button(key="queue.take").click().run()
    assert _reload(db, taken).assigned_to == "oscar"

    mona = _queue(monkeypatch, demo_url, "mona")  # managers read the queue, they do not take
    assert "queue.next" not in {b.key for b in mona.button}


def test_undo_from_the_run_page_starts_a_linked_undo(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with read_session(db) as session:
        grant = session.exec(
            select(ToolCall)
            .where(col(ToolCall.tool) == "grant_access")
            .where(col(ToolCall.status) == ToolCallStatus.SUCCEEDED)
            .order_by(col(ToolCall.id))
        ).first()
    assert grant is not None and grant.id is not None
    at = open_console(
        monkeypatch, demo_url, user="oscar", page="run.py", query={"run": str(grant.run_id)}
    )
    assert at.selectbox(key="runs.undo.call").value == grant.id
    at.text_input(key="runs.undo.reason").input("granted by mistake")
    at.button(key="runs.undo.submit").click().run()
    assert not at.exception, at.exception
    assert f"The undo of call {grant.id} is queued as task" in _texts(at.success)
    with read_session(db) as session:
        link = session.exec(select(Compensation)).one()
    assert (link.original_call_id, link.tool, link.requested_by) == (
        grant.id,
        "revoke_access",
        "oscar",
    )
    drive(db, installed_registry())  # the undo run parks on its review
    with read_session(db) as session:
        undo_run = session.exec(select(Run).where(col(Run.task_id) == link.task_id)).one()
    back = open_console(
        monkeypatch, demo_url, user="olga", page="run.py", query={"run": str(undo_run.id)}
    )
    assert f"attempted undo of call {grant.id} of run {grant.run_id}" in _texts(back.info)
    forth = open_console(
        monkeypatch, demo_url, user="olga", page="run.py", query={"run": str(grant.run_id)}
    )
    attempts = _frame(forth, "undo of call")
    assert attempts.iloc[0]["undo with"] == "revoke_access"
    assert attempts.iloc[0]["task status"] == "waiting_review"
    # An engineer reads the run but is offered no Undo.
    erin = open_console(
        monkeypatch, demo_url, user="erin", page="run.py", query={"run": str(grant.run_id)}
    )
    assert "runs.undo.reason" not in {t.key for t in erin.text_input}


def test_system_status_shows_notification_failures(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(
        "channels:\n"
        "  hooks: {webhook: 'http://127.0.0.1:9/steward', secret_env: STEWARD_TEST_HOOK_SECRET}\n"
        "routes:\n"
        "  - {events: [review.raised], channels: [hooks]}\n"
    )
    monkeypatch.setenv("STEWARD_NOTIFY_FILE", str(path))
    monkeypatch.delenv("STEWARD_TEST_HOOK_SECRET", raising=False)
    platform = platform_for(db, installed_registry())
    report = notify_once(platform)
    assert report is not None and report.failed > 0 and report.sent == 0
    at = open_console(monkeypatch, demo_url, user="olga", page="status.py")
    assert "Some messages could not be delivered" in _texts(at.warning)
    row = _frame(at, "channel").set_index("channel").loc["hooks"]
    assert row["retrying"] == report.failed and row["sent"] == 0
    assert "STEWARD_TEST_HOOK_SECRET" in row["last error"]


def test_a_link_with_a_review_opens_it_in_the_pane(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    review = _review(db, "refund-needs-approval")
    at = open_console(
        monkeypatch, demo_url, user="olga", page="queue.py", query={"review": str(review.id)}
    )
    assert at.session_state["queue.opened"] == review.id
    assert f"Review {review.id}: escalation of issue_refund" in [h.value for h in at.subheader]


def test_an_admin_saves_notification_settings_on_the_status_page(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEWARD_NOTIFY_FILE", raising=False)
    at = open_console(monkeypatch, demo_url, user="ada", page="status.py")
    at.text_area(key="status.notify.yaml").input(
        "channels:\n  mail: {url: 'mailto://127.0.0.1:1025?from=a@example.com&to=b@example.com'}\n"
        "routes:\n  - {events: [review.raised], channels: [mail]}\n"
    )
    at.button(key="status.notify.save").click().run()
    assert not at.exception, at.exception
    assert "Saved: 1 channel(s), 1 route(s)." in _texts(at.success)
    at.text_area(key="status.notify.yaml").input("routes: []\n")
    at.button(key="status.notify.save").click().run()
    assert "channels" in _texts(at.error)  # refused in one sentence; the saved one stays
    with read_session(db) as session:
        saved = session.get(NotifySettings, 1)
    assert saved is not None and "mailto://" in saved.source_yaml
    olga = open_console(monkeypatch, demo_url, user="olga", page="status.py")
    assert "status.notify.yaml" not in {t.key for t in olga.text_area}
