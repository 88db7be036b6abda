"""Settings are checked when a process starts: one sentence naming the variable, exit 2 from
the command line before any work is claimed, one error in the console before sign-in."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from limits.storage import Storage
from sqlalchemy.engine import Engine
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from agent.errors import ConfigurationError
from agent.mediation.ratelimit import configured_storage, named_storage
from agent.settings import check_settings
from storage import migrate
from storage.engine import create_engine, read_session
from storage.enums import TaskStatus
from storage.models import Run, Task, Worker
from tests.support.cli import refused, steward
from tests.support.runtime import install_agent, scripted_version, submit

APP = str(Path(__file__).resolve().parents[1] / "console" / "app.py")


class FixedWindowOnlyStorage(Storage):
    """A store the ``limits`` library accepts by URI that cannot count moving windows."""

    STORAGE_SCHEME = ["steward-test-fixed-only"]

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return amount

    def get(self, key: str) -> int:
        return 0

    def get_expiry(self, key: str) -> float:
        return 0.0

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        return 0

    def clear(self, key: str) -> None:
        return None


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    return {"STEWARD_DATABASE_URL": f"sqlite:///{tmp_path / 'steward.db'}", **settings}


def test_defaults_are_read_and_checked(tmp_path: Path) -> None:
    settings = check_settings(_env(tmp_path))
    assert settings.database_url.database == str(tmp_path / "steward.db")
    assert settings.sqlite_synchronous == "NORMAL"
    assert settings.rate_limit_storage is None  # the database keeps the counters
    assert settings.pricing_file is None
    assert settings.embedded_worker is True
    assert settings.user is None


def test_good_values_are_taken(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."local*"]\ninput = 0\noutput = 0\n')
    settings = check_settings(
        _env(
            tmp_path,
            STEWARD_SQLITE_SYNCHRONOUS="full",
            STEWARD_RATE_LIMIT_STORAGE="memory://",
            STEWARD_PRICING_FILE=str(prices),
            STEWARD_EMBEDDED_WORKER="off",
            STEWARD_USER="olga",
        )
    )
    assert settings.sqlite_synchronous == "FULL"
    assert settings.rate_limit_storage == "memory://"
    assert settings.pricing_file == prices
    assert settings.embedded_worker is False
    assert settings.user == "olga"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("STEWARD_DATABASE_URL", "oracle://x@y/z", "Steward supports sqlite and postgresql"),
        ("STEWARD_SQLITE_SYNCHRONOUS", "OFF", "must be one of NORMAL, FULL, EXTRA"),
        ("STEWARD_RATE_LIMIT_STORAGE", "bogus://x", "unknown storage scheme"),
        ("STEWARD_RATE_LIMIT_STORAGE", "localhost:6379", "unknown storage scheme"),
        ("STEWARD_RATE_LIMIT_STORAGE", "async+memory://", "asynchronous store"),
        (
            "STEWARD_RATE_LIMIT_STORAGE",
            "steward-test-fixed-only://",
            "cannot count moving windows",
        ),
        ("STEWARD_PRICING_FILE", "/no/such/prices.toml", "cannot be read"),
        ("STEWARD_EMBEDDED_WORKER", "maybe", "must be 1 or 0"),
        ("STEWARD_USER", "Olga Smith", "must be a user name"),
        ("STEWARD_USER", " olga", "must be a user name"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_its_variable(
    tmp_path: Path, variable: str, value: str, fragment: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_settings(_env(tmp_path, **{variable: value}))
    message = str(raised.value)
    assert variable in message
    assert fragment in message
    assert "\n" not in message and message.endswith(".")


def test_a_malformed_pricing_file_names_the_variable(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("models: {gpt-x: {input: -1, output: 1}}\n")
    with pytest.raises(ConfigurationError, match=r"^STEWARD_PRICING_FILE: the pricing file"):
        check_settings(_env(tmp_path, STEWARD_PRICING_FILE=str(prices)))


def test_a_password_in_the_rate_limit_store_is_never_shown() -> None:
    with pytest.raises(ConfigurationError) as raised:
        configured_storage({"STEWARD_RATE_LIMIT_STORAGE": "bogus://user:s3cret@host:1"})
    assert "s3cret" not in str(raised.value)
    assert "bogus://user:***@host:1" in str(raised.value)


def test_a_named_store_is_built_once_per_process() -> None:
    assert named_storage("memory://") is named_storage("memory://")
    assert configured_storage({"STEWARD_RATE_LIMIT_STORAGE": " "}) is None


def _queued_task(url: str) -> Engine:
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
    return engine


def test_a_bad_rate_limit_store_stops_the_worker_before_it_claims_anything(
    tmp_path: Path,
) -> None:
    engine = _queued_task(f"sqlite:///{tmp_path / 'steward.db'}")
    try:
        started = time.monotonic()
        result = steward(
            engine, "worker", "--drain", env={"STEWARD_RATE_LIMIT_STORAGE": "bogus://x"}
        )
        assert time.monotonic() - started < 30  # a drain would wait for the work to settle
        refused(result, "STEWARD_RATE_LIMIT_STORAGE cannot be used (unknown storage scheme")
        with read_session(engine) as session:
            assert [t.status for t in session.exec(select(Task))] == [TaskStatus.QUEUED]
            assert session.exec(select(Run)).all() == []
            assert session.exec(select(Worker)).all() == []  # no worker even registered
    finally:
        engine.dispose()


def test_every_command_checks_the_settings_first(tmp_path: Path) -> None:
    result = steward(
        f"sqlite:///{tmp_path / 'steward.db'}",
        "db",
        "upgrade",
        env={"STEWARD_EMBEDDED_WORKER": "maybe"},
    )
    refused(result, "STEWARD_EMBEDDED_WORKER must be 1 or 0")
    assert not (tmp_path / "steward.db").exists()  # nothing was created


def test_the_console_says_what_is_wrong_before_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _queued_task(f"sqlite:///{tmp_path / 'steward.db'}")
    engine.dispose()
    monkeypatch.setenv("STEWARD_DATABASE_URL", f"sqlite:///{tmp_path / 'steward.db'}")
    monkeypatch.setenv("STEWARD_EMBEDDED_WORKER", "1")
    monkeypatch.setenv("STEWARD_RATE_LIMIT_STORAGE", "async+memory://")
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].value.startswith("STEWARD_RATE_LIMIT_STORAGE names an asynchronous store")
    assert not at.text_input  # no sign-in form
    engine = create_engine(f"sqlite:///{tmp_path / 'steward.db'}")
    try:
        with read_session(engine) as session:
            assert session.exec(select(Worker)).all() == []  # the embedded worker never started
    finally:
        engine.dispose()
