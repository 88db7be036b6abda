"""The audit log is a hash chain: intact chains verify, any tampering names the first bad event."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agent.users import add_first_user
from storage import migrate
from storage.audit import GENESIS_HASH, append_event, verify_chain
from storage.engine import read_session, write_session
from tests.support.cli import steward
from tests.support.runtime import platform_for


def _append(engine: Engine, count: int) -> None:
    with write_session(engine) as session:
        for i in range(count):
            append_event(
                session,
                actor=f"user{i % 3}",
                action="review.approve",
                target_type="review",
                target_id=i,
                payload={"amount": 12.5 * i, "note": "ünïcode ✓", "nested": {"b": 1, "a": [1, 2]}},
            )


def _verify(engine: Engine) -> tuple[bool, int | None, int, str]:
    with read_session(engine) as session:
        report = verify_chain(session, batch_size=4)
    return report.ok, report.first_bad_seq, report.count, report.problem


def test_intact_chain_verifies_and_links_each_event(engine: Engine) -> None:
    _append(engine, 10)
    assert _verify(engine) == (True, None, 10, "")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq")
        ).all()
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, len(rows)))
    assert len({r.hash for r in rows}) == 10


def test_altered_payload_is_named(engine: Engine) -> None:
    _append(engine, 10)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 6"))
    ok, bad, count, problem = _verify(engine)
    assert (ok, bad, count) == (False, 6, 5)
    assert "altered" in problem


def test_deleted_event_is_named(engine: Engine) -> None:
    _append(engine, 10)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 4"))
    ok, bad, count, _ = _verify(engine)
    assert (ok, bad, count) == (False, 5, 3)


def test_reordered_events_are_named(engine: Engine) -> None:
    _append(engine, 10)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET seq = -1 WHERE seq = 7"))
        conn.execute(sa.text("UPDATE audit_events SET seq = 7 WHERE seq = 8"))
        conn.execute(sa.text("UPDATE audit_events SET seq = 8 WHERE seq = -1"))
    ok, bad, count, problem = _verify(engine)
    assert (ok, bad, count) == (False, 7, 6)
    assert "reordered" in problem


def test_empty_chain_is_intact(engine: Engine) -> None:
    assert _verify(engine) == (True, None, 0, "")


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        ("UPDATE audit_events SET payload = '{\"amount\": 0}' WHERE seq = 3", 3),
        ("DELETE FROM audit_events WHERE seq = 3", 4),
    ],
)
def test_cli_verify_exit_codes(db_url: sa.URL, tamper: str, first_bad: int) -> None:
    url = db_url.render_as_string(hide_password=False)
    engine = migrate_and_fill(db_url)
    intact = steward(url, "audit", "verify", "--as", "ada")
    assert intact.returncode == 0, intact.stderr
    assert "6 events verified" in intact.stdout
    with engine.begin() as conn:
        conn.execute(sa.text(tamper))
    engine.dispose()
    broken = steward(url, "audit", "verify", "--as", "ada")
    assert broken.returncode == 1
    assert f"event #{first_bad}" in broken.stdout
    as_json = steward(url, "audit", "verify", "--as", "ada", "--json")
    assert as_json.returncode == 1
    assert f'"first_bad_seq": {first_bad}' in as_json.stdout


def migrate_and_fill(url: sa.URL) -> Engine:
    """A migrated database with five events, then an admin (ada) to read them: six in all."""
    from storage.engine import create_engine

    engine = create_engine(url)
    migrate.upgrade(engine)
    _append(engine, 5)
    add_first_user(platform_for(engine), "ada", ["admin"], password="ada-password")
    return engine


def test_concurrent_appends_keep_one_chain(engine: Engine) -> None:
    """Writers in parallel threads never fork the chain (same predecessor twice)."""
    from concurrent.futures import ThreadPoolExecutor

    def work(_: int) -> None:
        for _ in range(5):
            _append(engine, 1)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(4)))
    assert _verify(engine) == (True, None, 20, "")


def test_chain_survives_restart_of_process(tmp_path: Path) -> None:
    """Hashes computed at append time still match after a fresh process reads the rows."""
    url = sa.make_url(f"sqlite:///{tmp_path / 'a.db'}")
    migrate_and_fill(url).dispose()
    result = steward(url.render_as_string(), "audit", "verify", "--as", "ada")
    assert result.returncode == 0 and "6 events" in result.stdout
