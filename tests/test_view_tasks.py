"""The tasks view: submitting work from a form, bad input in one sentence, work and workers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select
from streamlit.testing.v1 import AppTest

from storage.engine import read_session, write_session
from storage.enums import TaskStatus
from storage.models import AuditEvent, Task, Worker
from storage.types import utcnow
from tests.support.console import engine_for, open_console


@pytest.fixture
def db(demo_url: str) -> Iterator[Engine]:
    engine = engine_for(demo_url)
    yield engine
    engine.dispose()


def tasks_page(monkeypatch: pytest.MonkeyPatch, url: str, user: str = "olga") -> AppTest:
    return open_console(monkeypatch, url, user=user, page="tasks.py")


def submit(at: AppTest, agent: str, text: str, priority: int = 0) -> AppTest:
    at.selectbox(key="tasks.agent").set_value(agent)
    at.text_area(key="tasks.input").input(text)
    at.number_input(key="tasks.priority").set_value(priority)
    at.button(key="tasks.submit").click().run()
    assert not at.exception, at.exception
    return at


def task_count(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Task)).one())


def frame(at: AppTest, first_column: str) -> pd.DataFrame:
    tables = [df.value for df in at.dataframe]
    return next(t for t in tables if len(t.columns) and t.columns[0] == first_column)


def test_submitting_a_task_queues_it_and_lists_it(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = tasks_page(monkeypatch, demo_url)
    at = submit(
        at,
        "support",
        '{"intent": "order_status", "customer_id": "C-1001", "order_id": "O-5001"}',
        7,
    )
    with read_session(db) as session:
        task = session.exec(select(Task).order_by(col(Task.id).desc())).first()
        audit = session.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "task.submit")
        ).all()
    assert task is not None
    assert (task.status, task.priority, task.submitted_by, task.source) == (
        TaskStatus.QUEUED,
        7,
        "olga",
        "console",
    )
    assert task.input["order_id"] == "O-5001"
    assert [e.target_id for e in audit][-1] == str(task.id)
    assert (
        at.success[0].value == f"Task {task.id} is queued for support; a worker picks it up next."
    )
    work = frame(at, "task")
    assert work.iloc[0][["task", "agent", "status", "priority"]].tolist() == [
        task.id,
        "support",
        "queued",
        7,
    ]
    assert {m.label: m.value for m in at.metric}["Queued"] == "1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"intent": "refund", ',
            "The task input is not valid JSON: Expecting property name enclosed in double quotes "
            "at line 1 column 22.",
        ),
        ("", "The task input is not valid JSON: Expecting value at line 1 column 1."),
        ("[1, 2]", "The task input must be a JSON object ({...}), not an array."),
        ("{}", "The task input must be a non-empty JSON object."),
        (
            '{"intent": "refund", "amount": NaN}',
            "The task input has a number that is not finite (NaN or Infinity) at $.amount; "
            "JSON numbers must be finite.",
        ),
        (
            '{"intent": "refund", "message": "\\ud800"}',
            "The task input has a lone UTF-16 surrogate in $.message (text that is not valid "
            "Unicode); send valid UTF-8 text.",
        ),
        (
            '{"intent": "refund", "message": "a\\u0000"}',
            "The task input has a NUL character in $.message; remove it.",
        ),
    ],
)
def test_bad_input_is_refused_in_one_sentence(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    before = task_count(db)
    at = submit(tasks_page(monkeypatch, demo_url), "support", text)
    assert [e.value for e in at.error] == [message]
    assert not at.success
    assert task_count(db) == before
    # What was typed stays, so it can be fixed.
    assert at.text_area(key="tasks.input").value == text


def test_worker_heartbeats_are_shown_and_a_silent_worker_is_flagged(
    demo_url: str, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = tasks_page(monkeypatch, demo_url, user="erin")
    assert "No worker is running" in at.warning[0].value

    with write_session(db) as session:
        session.add(
            Worker(
                id="host:7:old",
                hostname="host",
                pid=7,
                heartbeat_at=utcnow() - timedelta(minutes=5),
            )
        )
    at.run()
    assert "No worker has reported in the last 30 s" in at.warning[0].value
    workers = frame(at, "worker")
    assert workers.iloc[0][["worker", "stale"]].tolist() == ["host:7:old", True]

    with write_session(db) as session:
        session.add(Worker(id="host:8:new", hostname="host", pid=8, heartbeat_at=utcnow()))
    at.run()
    assert not at.warning
    workers = frame(at, "worker")
    assert workers[["worker", "stale"]].values.tolist() == [
        ["host:8:new", False],
        ["host:7:old", True],
    ]
    assert workers.iloc[0]["last heartbeat"].endswith("s ago")
