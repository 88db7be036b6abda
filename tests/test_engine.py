"""Engine settings, aware UTC timestamps, and URL errors a person can act on."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from storage.engine import create_engine, database_url, mask_url, write_session
from storage.errors import DatabaseConfigError, DatabaseUnavailableError
from storage.models import Agent, Worker
from storage.types import utcnow
from tests.support.cli import steward


def test_sqlite_pragmas_are_set_on_every_connection(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        values = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("busy_timeout", "journal_mode", "synchronous", "foreign_keys")
        }
    assert values == {
        "busy_timeout": 10000,
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
    }
    other = sa.create_engine(f"sqlite:///{tmp_path / 'q.db'}")
    with other.connect() as conn:  # a plain engine elsewhere is left untouched
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0


def test_sqlite_durability_level_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_SQLITE_SYNCHRONOUS", "full")
    engine = create_engine(f"sqlite:///{tmp_path / 'full.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    explicit = create_engine(f"sqlite:///{tmp_path / 'extra.db'}", synchronous="EXTRA")
    with explicit.connect() as conn:  # the argument wins over the environment
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 3


@pytest.mark.parametrize("level", ["OFF", "0", "fast"])
def test_unsafe_or_unknown_durability_levels_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    monkeypatch.setenv("STEWARD_SQLITE_SYNCHRONOUS", level)
    with pytest.raises(DatabaseConfigError, match="STEWARD_SQLITE_SYNCHRONOUS must be one of"):
        create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert not (tmp_path / "x.db").exists()


def test_cli_reports_a_bad_durability_level_in_one_line(tmp_path: Path) -> None:
    result = steward(
        f"sqlite:///{tmp_path / 'x.db'}",
        "db",
        "upgrade",
        env={"STEWARD_SQLITE_SYNCHRONOUS": "OFF"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "steward: STEWARD_SQLITE_SYNCHRONOUS must be one of NORMAL, FULL, EXTRA, not 'OFF'."
    ]


def test_default_url_creates_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = database_url({})
    assert url.database == "data/steward.db"
    assert (tmp_path / "data").is_dir()


def test_postgres_urls_use_psycopg_and_passwords_are_masked() -> None:
    url = database_url(
        {"STEWARD_DATABASE_URL": "postgresql://alice:s3cret@db.example:5433/steward"}
    )
    assert url.drivername == "postgresql+psycopg"
    assert "s3cret" not in mask_url(url)
    assert "s3cret" not in mask_url("postgresql://alice:s3cret@db/x")


@pytest.mark.parametrize("raw", ["not a url", "mysql://root@localhost/x", "postgresql://host"])
def test_bad_urls_raise_config_errors(raw: str) -> None:
    with pytest.raises(DatabaseConfigError, match="STEWARD_DATABASE_URL"):
        database_url({"STEWARD_DATABASE_URL": raw})


def test_uncreatable_sqlite_folder_is_unavailable() -> None:
    with pytest.raises(DatabaseUnavailableError, match="STEWARD_DATABASE_URL"):
        database_url({"STEWARD_DATABASE_URL": "sqlite:////proc/steward/x.db"})


def test_timestamps_come_back_aware_utc(engine: Engine) -> None:
    moment = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    with write_session(engine) as session:
        session.add(Agent(name="a", created_at=moment))
    with write_session(engine) as session:
        agent = session.exec(select(Agent)).one()
    assert agent.created_at.tzinfo is not None
    assert agent.created_at.utcoffset() == timedelta(0)
    assert agent.created_at == moment


def _add(engine: Engine, row: Agent) -> None:
    with write_session(engine) as session:
        session.add(row)


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    naive = Agent(name="n", created_at=datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        _add(engine, naive)
    with write_session(engine) as session:
        assert session.exec(select(Agent)).all() == []


def test_write_sessions_serialize_read_modify_write(engine: Engine) -> None:
    """Eight threads each add 1 to a counter 25 times: with BEGIN IMMEDIATE none is lost."""
    with write_session(engine) as session:
        session.add(Worker(id="w", hostname="h", pid=1, runs_processed=0))
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(25):
                with write_session(engine) as session:
                    query = select(Worker).where(Worker.id == "w")
                    if engine.dialect.name == "postgresql":
                        query = query.with_for_update()
                    worker = session.exec(query).one()
                    worker.runs_processed += 1
                    worker.heartbeat_at = utcnow()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with write_session(engine) as session:
        assert session.exec(select(Worker)).one().runs_processed == 200


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("::not-a-url::", "is not a database URL"),
        ("oracle://scott:tiger@db/x", "supports sqlite and postgresql"),
        ("postgresql://nobody:pw@127.0.0.1:1/steward", "cannot connect"),
        ("sqlite:////proc/steward/x.db", "cannot create the folder"),
    ],
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "current"], ["audit", "verify"]])
def test_cli_reports_bad_urls_in_one_line(url: str, phrase: str, command: list[str]) -> None:
    result = steward(url, *command)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "STEWARD_DATABASE_URL" in lines[0] and phrase in lines[0]
    assert "Traceback" not in result.stderr
    assert "pw@" not in result.stderr and "tiger" not in result.stderr


def test_utcnow_is_aware() -> None:
    assert utcnow().tzinfo is UTC
