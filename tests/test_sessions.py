"""Console sessions (``agent.sessions``) on SQLite and PostgreSQL: a grant is redeemed once for a
signed cookie; the cookie resumes the session until it is revoked (sign-out, account disabled,
roles changed) or times out (idle, absolute); a tampered or foreign cookie resumes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import sessions
from agent.actors import Actor
from agent.errors import ConfigurationError
from agent.sessions import SessionPolicy
from agent.settings import check_settings
from agent.users import actor_for, add_first_user, add_user, disable_user, set_roles
from storage.engine import read_session, write_session
from storage.models import AuditEvent, UserSession
from storage.types import utcnow
from tests.support.runtime import platform_for

POLICY = SessionPolicy(timedelta(minutes=30), timedelta(hours=8), "s" * 40)


@pytest.fixture
def people(engine: Engine) -> tuple[Actor, Actor]:
    """An admin and an operator."""
    platform = platform_for(engine)
    add_first_user(platform, "root", ["admin"], password="root-password")
    admin = actor_for(platform, "root")
    add_user(platform, admin, "olga", ["operator"], password="olga-password")
    return admin, actor_for(platform, "olga")


def _signed_in(engine: Engine, actor: Actor) -> tuple[int, str]:
    """A session for ``actor`` whose grant was redeemed; its id and the cookie's value."""
    platform = platform_for(engine)
    session_id, grant = sessions.open_session(platform, actor, policy=POLICY)
    redeemed = sessions.redeem_grant(platform, grant, policy=POLICY)
    assert redeemed is not None
    cookie, lifetime = redeemed
    assert 0 < lifetime <= POLICY.absolute.total_seconds()
    return session_id, cookie


def _row(engine: Engine, session_id: int) -> UserSession:
    with read_session(engine) as session:
        row = session.get(UserSession, session_id)
    assert row is not None
    return row


def test_a_redeemed_grant_gives_a_cookie_that_resumes_the_session(
    engine: Engine, people: tuple[Actor, Actor]
) -> None:
    _admin, olga = people
    platform = platform_for(engine)
    session_id, grant = sessions.open_session(platform, olga, policy=POLICY)
    redeemed = sessions.redeem_grant(platform, grant, policy=POLICY)
    assert redeemed is not None
    cookie = redeemed[0]
    resumed = sessions.resume(platform, cookie, policy=POLICY)
    assert resumed is not None
    assert (resumed.session_id, resumed.actor) == (session_id, olga)
    # A grant works once; the database holds hashes only, never the grant or the token.
    assert sessions.redeem_grant(platform, grant, policy=POLICY) is None
    row = _row(engine, session_id)
    assert row.grant_hash is None
    assert row.token_hash is not None
    assert row.token_hash not in cookie and grant not in str(row.model_dump())


def test_a_tampered_or_foreign_cookie_resumes_nothing(
    engine: Engine, people: tuple[Actor, Actor]
) -> None:
    _admin, olga = people
    platform = platform_for(engine)
    _id, cookie = _signed_in(engine, olga)
    token, _, signature = cookie.rpartition(".")
    assert sessions.resume(platform, f"{token}x.{signature}", policy=POLICY) is None
    other_key = SessionPolicy(POLICY.idle, POLICY.absolute, "o" * 40)
    assert sessions.resume(platform, cookie, policy=other_key) is None
    assert sessions.resume(platform, "", policy=POLICY) is None
    assert sessions.resume(platform, cookie, policy=POLICY) is not None


def test_an_expired_grant_is_refused_and_spent(engine: Engine, people: tuple[Actor, Actor]) -> None:
    _admin, olga = people
    platform = platform_for(engine)
    session_id, grant = sessions.open_session(platform, olga, policy=POLICY)
    with write_session(engine) as session:
        row = session.get(UserSession, session_id)
        assert row is not None
        row.grant_expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
    assert sessions.redeem_grant(platform, grant, policy=POLICY) is None
    assert _row(engine, session_id).grant_hash is None
    assert sessions.check(platform, session_id, policy=POLICY) is None


def test_sign_out_ends_the_session_for_every_tab(
    engine: Engine, people: tuple[Actor, Actor]
) -> None:
    _admin, olga = people
    platform = platform_for(engine)
    session_id, cookie = _signed_in(engine, olga)
    assert sessions.check(platform, session_id, policy=POLICY) is not None
    sessions.revoke(platform, session_id)
    # The tab that signed out, another tab (its session id) and a reload (the cookie).
    assert sessions.check(platform, session_id, policy=POLICY) is None
    assert sessions.resume(platform, cookie, policy=POLICY) is None
    assert _row(engine, session_id).revoked_reason == "signed out"


@pytest.mark.parametrize(
    ("change", "reason"),
    [("disable", "account disabled"), ("roles", "roles changed")],
)
def test_disabling_an_account_or_changing_its_roles_ends_its_sessions(
    engine: Engine, people: tuple[Actor, Actor], change: str, reason: str
) -> None:
    admin, olga = people
    platform = platform_for(engine)
    first, cookie = _signed_in(engine, olga)
    second, _ = _signed_in(engine, olga)
    own, _ = _signed_in(engine, admin)
    if change == "disable":
        disable_user(platform, admin, "olga")
    else:
        set_roles(platform, admin, "olga", ["operator", "manager"])
    assert sessions.check(platform, first, policy=POLICY) is None
    assert sessions.check(platform, second, policy=POLICY) is None
    assert sessions.resume(platform, cookie, policy=POLICY) is None
    assert {_row(engine, i).revoked_reason for i in (first, second)} == {reason}
    # The admin's own session is untouched.
    assert sessions.check(platform, own, policy=POLICY) is not None
    with read_session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "user.sessions_revoked")
        ).all()
    assert [(e.actor, e.target_id, e.payload) for e in events] == [
        ("root", "olga", {"sessions": 2, "reason": reason})
    ]


@pytest.mark.parametrize(
    ("field", "moved_by", "reason"),
    [
        ("last_seen_at", -POLICY.idle, "idle timeout"),
        ("expires_at", -POLICY.absolute, "absolute timeout"),
    ],
)
def test_a_session_times_out_when_idle_or_too_old(
    engine: Engine,
    people: tuple[Actor, Actor],
    field: str,
    moved_by: timedelta,
    reason: str,
) -> None:
    _admin, olga = people
    platform = platform_for(engine)
    session_id, cookie = _signed_in(engine, olga)
    with write_session(engine) as session:
        row = session.get(UserSession, session_id)
        assert row is not None
        setattr(row, field, getattr(row, field) + moved_by)
        session.add(row)
    assert sessions.resume(platform, cookie, policy=POLICY) is None
    assert _row(engine, session_id).revoked_reason == reason


def test_use_keeps_an_idle_session_alive(engine: Engine, people: tuple[Actor, Actor]) -> None:
    _admin, olga = people
    platform = platform_for(engine)
    session_id, _cookie = _signed_in(engine, olga)
    almost = utcnow() - POLICY.idle + timedelta(minutes=1)
    with write_session(engine) as session:
        row = session.get(UserSession, session_id)
        assert row is not None
        row.last_seen_at = almost
        session.add(row)
    assert sessions.check(platform, session_id, policy=POLICY) is not None
    assert _row(engine, session_id).last_seen_at > almost


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"STEWARD_SESSION_IDLE_MINUTES": "0"}, "STEWARD_SESSION_IDLE_MINUTES must be a positive"),
        ({"STEWARD_SESSION_MAX_HOURS": "soon"}, "STEWARD_SESSION_MAX_HOURS must be a positive"),
        (
            {"STEWARD_SESSION_IDLE_MINUTES": "600", "STEWARD_SESSION_MAX_HOURS": "2"},
            "make the idle timeout the shorter one",
        ),
        ({"STEWARD_SESSION_SECRET": "short"}, "at least 32 characters"),
    ],
)
def test_session_settings_are_checked_at_start(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        check_settings(env)
    good = check_settings(
        {"STEWARD_SESSION_IDLE_MINUTES": "15", "STEWARD_SESSION_MAX_HOURS": "1.5"}
    ).sessions
    assert (good.idle, good.absolute) == (timedelta(minutes=15), timedelta(hours=1.5))
