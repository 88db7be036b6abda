"""The status view: masked URL, schema revision, row counts and worker heartbeats."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from streamlit.testing.v1 import AppTest

from storage import migrate
from storage.audit import append_event
from storage.engine import create_engine, write_session
from storage.models import User, Worker

APP = str(Path(__file__).resolve().parents[1] / "console" / "app.py")


def _app(monkeypatch: pytest.MonkeyPatch, url: str, *, user: str | None = None) -> AppTest:
    monkeypatch.setenv("STEWARD_DATABASE_URL", url)
    monkeypatch.setenv("STEWARD_EMBEDDED_WORKER", "0")
    at = AppTest.from_file(APP, default_timeout=30)
    if user is not None:
        at.session_state["auth.user"] = {"name": user}
        at.run()
        at.switch_page("views/status.py")
    at.run()
    assert not at.exception
    return at


def test_status_of_a_migrated_database(db_url: URL, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine(db_url)
    migrate.upgrade(engine)
    with write_session(engine) as session:
        for i in range(3):
            append_event(session, actor="admin", action="user.add", target_id=i)
        session.add(Worker(id="host:1:abc", hostname="host", pid=1, embedded=True))
        session.add(User(name="root", roles=["admin"]))
    engine.dispose()

    url = db_url.render_as_string(hide_password=False)
    if db_url.get_backend_name() == "postgresql":  # trust auth accepts any password
        url = db_url.set(password="s3cret-pw").render_as_string(hide_password=False)
    at = _app(monkeypatch, url, user="root")

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Schema revision"] == migrate.head_revision()
    assert metrics["Database"] == db_url.get_backend_name()
    assert not at.warning
    frames = {next(iter(df.value.columns)): df.value for df in at.dataframe}
    tables = frames["table"].set_index("table")["rows"].to_dict()
    assert tables["audit_events"] == 3
    assert tables["users"] == 1
    assert tables["runs"] == 0
    workers = frames["worker"]
    assert list(workers["worker"]) == ["host:1:abc"]
    caption = " ".join(c.value for c in at.caption)
    assert "s3cret-pw" not in caption
    durability = {"sqlite": "synchronous=NORMAL", "postgresql": "synchronous_commit=on"}
    assert f"durability: `{durability[db_url.get_backend_name()]}`" in caption
    if db_url.get_backend_name() == "postgresql":
        assert "***" in caption


def test_an_unmigrated_database_is_one_sentence_before_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing works on an unmigrated database, sign-in included: one sentence says what to run.
    at = _app(monkeypatch, f"sqlite:///{tmp_path / 'empty.db'}")
    assert len(at.error) == 1
    assert "steward db upgrade" in at.error[0].value


def test_status_explains_a_bad_url_in_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, "oracle://x@y/z")
    assert len(at.error) == 1
    assert "STEWARD_DATABASE_URL" in at.error[0].value


def test_a_bad_durability_level_is_one_sentence_before_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_SQLITE_SYNCHRONOUS", "OFF")
    at = _app(monkeypatch, f"sqlite:///{tmp_path / 'x.db'}")
    assert [e.value for e in at.error] == [
        "STEWARD_SQLITE_SYNCHRONOUS must be one of NORMAL, FULL, EXTRA, not 'OFF'."
    ]
    assert not at.text_input  # no sign-in form on a database that cannot be opened


def test_console_embeds_one_worker_that_processes_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamlit as st
    from sqlmodel import select

    from storage.engine import read_session
    from storage.enums import RunStatus
    from storage.models import Run
    from storage.models import Worker as WorkerRow
    from tests.support.runtime import install_agent, scripted_version, submit

    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    engine = create_engine(url)
    migrate.upgrade(engine)
    install_agent(
        engine,
        "shop",
        scripted_version(
            [{"reasoning": "done", "final": {"resolution": "answered"}}],
            tools=[],
            data_sources=[],
            rate_limits=[],
            policy={"default": "allow"},
        ),
    )
    submit(engine, "shop", {"question": "where is my order?"})
    monkeypatch.setenv("STEWARD_DATABASE_URL", url)
    monkeypatch.setenv("STEWARD_EMBEDDED_WORKER", "1")
    try:
        for _ in range(2):  # two sessions, one worker
            at = AppTest.from_file(APP, default_timeout=30)
            at.run()
            assert not at.exception
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with read_session(engine) as session:
                run = session.exec(select(Run)).first()
            if run is not None and run.status is RunStatus.SUCCEEDED:
                break
            time.sleep(0.2)
        with read_session(engine) as session:
            workers = session.exec(select(WorkerRow)).all()
        assert run is not None
        assert run.status is RunStatus.SUCCEEDED
        assert [w.embedded for w in workers] == [True]
    finally:
        st.cache_resource.clear()
        engine.dispose()
