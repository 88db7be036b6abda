"""Users: bootstrap, admin-only changes, argon2 hashes, one failure message, lockout."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import Actor
from agent.auth import FAILED_MESSAGE, LOCK_BASE, MAX_FAILURES, authenticate, lock_duration
from agent.errors import AuthenticationFailed, Forbidden, InvalidInput, NotFound
from agent.users import (
    actor_for,
    actor_for_email,
    add_first_user,
    add_user,
    disable_user,
    enable_user,
    list_users,
    set_password,
    set_roles,
)
from storage.audit import verify_chain
from storage.engine import read_session, write_session
from storage.enums import Role
from storage.models import AuditEvent, User
from storage.types import utcnow
from tests.support.runtime import platform_for

ROOT_PASSWORD = "root-password-1"
PASSWORD = "correct horse battery"


@pytest.fixture
def admin(engine: Engine) -> Actor:
    """The bootstrap admin of an otherwise empty installation."""
    add_first_user(
        platform_for(engine), "root", ["admin"], password=ROOT_PASSWORD, email="Root@Example.com"
    )
    return actor_for(platform_for(engine), "root")


def _add(engine: Engine, admin: Actor, name: str, *roles: str, **fields: str) -> None:
    add_user(platform_for(engine), admin, name, roles, password=PASSWORD, **fields)


def _row(engine: Engine, name: str) -> User:
    with read_session(engine) as session:
        return session.exec(select(User).where(User.name == name)).one()


def _failure_message(engine: Engine, name: str, password: str) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        authenticate(platform_for(engine), name, password)
    return str(caught.value)


def _events(engine: Engine) -> list[AuditEvent]:
    with read_session(engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def test_the_first_user_bootstraps_an_empty_installation(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="must hold the admin role"):
        add_first_user(platform_for(engine), "ops", ["operator"], password=PASSWORD)
    info = add_first_user(
        platform_for(engine), "root", ["admin", "engineer"], password=ROOT_PASSWORD
    )
    assert info.roles == (Role.ADMIN, Role.ENGINEER)
    with pytest.raises(Forbidden, match="only an admin may add users"):
        add_first_user(platform_for(engine), "second", ["admin"], password=PASSWORD)
    [event] = _events(engine)
    assert (event.actor, event.action, event.target_id) == ("root", "user.bootstrap", "root")


def test_only_admins_add_users(engine: Engine, admin: Actor) -> None:
    _add(engine, admin, "erin", "engineer", "operator", email="erin@example.com")
    for roles in (["engineer"], ["manager"], ["operator"]):
        with pytest.raises(Forbidden, match="role admin"):
            add_user(platform_for(engine), Actor.of("x", roles), "newbie", ["operator"])
    erin = actor_for(platform_for(engine), "erin")
    assert [u.name for u in list_users(platform_for(engine), admin).items] == ["erin", "root"]
    assert erin.roles == frozenset({Role.ENGINEER, Role.OPERATOR})


@pytest.mark.parametrize(
    ("name", "roles", "password", "email", "message"),
    [
        ("Bad Name", ["operator"], PASSWORD, None, "must be 1-64 characters"),
        ("x" * 65, ["operator"], PASSWORD, None, "must be 1-64 characters"),
        ("fine", ["superuser"], PASSWORD, None, "'superuser' is not a role"),
        ("fine", [], PASSWORD, None, "at least one role"),
        ("fine", ["operator"], "short", None, "at least 8 characters"),
        ("fine", ["operator"], PASSWORD, "not-an-email", "not an email address"),
        ("root", ["operator"], PASSWORD, None, "already exists"),
        ("fine", ["operator"], PASSWORD, "ROOT@example.com", "already has the email"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    engine: Engine,
    admin: Actor,
    name: str,
    roles: list[str],
    password: str,
    email: str | None,
    message: str,
) -> None:
    with pytest.raises(InvalidInput, match=message):
        add_user(platform_for(engine), admin, name, roles, password=password, email=email)
    assert list_users(platform_for(engine), admin).total == 1
    assert len(_events(engine)) == 1


def test_passwords_are_stored_as_argon2_hashes_and_never_audited(
    engine: Engine, admin: Actor
) -> None:
    _add(engine, admin, "olga", "operator")
    set_password(platform_for(engine), admin, "olga", "another secret")
    row = _row(engine, "olga")
    assert row.password_hash is not None
    assert row.password_hash.startswith("$argon2id$")
    assert "another secret" not in row.password_hash
    assert PasswordHasher().verify(row.password_hash, "another secret")
    authenticate(platform_for(engine), "olga", "another secret")
    with pytest.raises(AuthenticationFailed):
        authenticate(platform_for(engine), "olga", PASSWORD)
    everything = json.dumps([e.model_dump(mode="json") for e in _events(engine)])
    for secret in (PASSWORD, "another secret", ROOT_PASSWORD, row.password_hash, "$argon2"):
        assert secret not in everything
    with read_session(engine) as session:
        assert verify_chain(session).ok
        listed = list_users(platform_for(engine), admin).items
    assert not any("hash" in field for field in type(listed[0]).__dataclass_fields__)
    assert [u.has_password for u in listed] == [True, True]


def test_authenticate_returns_the_actor_and_records_the_sign_in(
    engine: Engine, admin: Actor
) -> None:
    _add(engine, admin, "erin", "engineer")
    actor = authenticate(platform_for(engine), "erin", PASSWORD)
    assert actor == Actor.of("erin", ["engineer"])
    row = _row(engine, "erin")
    assert row.last_login_at is not None
    assert row.failed_logins == 0
    assert _events(engine)[-1].action == "user.login"


def test_every_failure_gives_the_same_message(engine: Engine, admin: Actor) -> None:
    _add(engine, admin, "erin", "engineer")
    _add(engine, admin, "gone", "operator")
    disable_user(platform_for(engine), admin, "gone")
    messages = {
        _failure_message(engine, "erin", "wrong password"),
        _failure_message(engine, "nobody", PASSWORD),
        _failure_message(engine, "gone", PASSWORD),
        _failure_message(engine, "Not A Valid Name", PASSWORD),
    }
    assert messages == {FAILED_MESSAGE}
    assert _row(engine, "erin").failed_logins == 1
    reasons = [e.payload["reason"] for e in _events(engine) if e.action == "user.login_failed"]
    assert reasons == ["password", "disabled"]


def test_repeated_failures_lock_the_account_for_a_growing_interval(
    engine: Engine, admin: Actor
) -> None:
    _add(engine, admin, "erin", "engineer")
    for _ in range(MAX_FAILURES - 1):
        _failure_message(engine, "erin", "guess")
    assert _row(engine, "erin").locked_until is None
    start = utcnow()
    _failure_message(engine, "erin", "guess")
    locked_until = _row(engine, "erin").locked_until
    assert locked_until is not None
    assert start + LOCK_BASE <= locked_until <= utcnow() + LOCK_BASE

    # Locked: even the right password fails, with the same message, and the lock is not extended.
    assert _failure_message(engine, "erin", PASSWORD) == FAILED_MESSAGE
    assert _row(engine, "erin").locked_until == locked_until
    assert _row(engine, "erin").failed_logins == MAX_FAILURES

    # After the lock, one more wrong guess locks for twice as long.
    later = locked_until + timedelta(seconds=1)
    with pytest.raises(AuthenticationFailed):
        authenticate(platform_for(engine), "erin", "guess", now=later)
    assert _row(engine, "erin").locked_until == later + 2 * LOCK_BASE

    # After that lock, the right password signs in and clears the count.
    actor = authenticate(platform_for(engine), "erin", PASSWORD, now=later + 3 * LOCK_BASE)
    assert actor.name == "erin"
    row = _row(engine, "erin")
    assert (row.failed_logins, row.locked_until) == (0, None)


def test_lock_durations_grow_and_are_capped() -> None:
    durations = [lock_duration(n) for n in range(MAX_FAILURES - 1, MAX_FAILURES + 20)]
    assert durations[0] == timedelta(0)
    assert durations[1:4] == [LOCK_BASE, 2 * LOCK_BASE, 4 * LOCK_BASE]
    assert durations[-1] == timedelta(hours=1)
    assert durations == sorted(durations)


def test_an_admin_unlocks_by_enabling(engine: Engine, admin: Actor) -> None:
    _add(engine, admin, "erin", "engineer")
    for _ in range(MAX_FAILURES):
        _failure_message(engine, "erin", "guess")
    info = enable_user(platform_for(engine), admin, "erin")
    assert (info.failed_logins, info.locked_until, info.disabled) == (0, None, False)
    assert authenticate(platform_for(engine), "erin", PASSWORD).name == "erin"
    with pytest.raises(InvalidInput, match="already enabled"):
        enable_user(platform_for(engine), admin, "erin")


def test_outdated_hashes_are_upgraded_on_sign_in(engine: Engine, admin: Actor) -> None:
    _add(engine, admin, "erin", "engineer")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with write_session(engine) as session:
        row = session.exec(select(User).where(User.name == "erin")).one()
        row.password_hash = weak
        session.add(row)
    authenticate(platform_for(engine), "erin", PASSWORD)
    upgraded = _row(engine, "erin").password_hash
    assert upgraded is not None
    assert upgraded != weak
    assert not PasswordHasher().check_needs_rehash(upgraded)
    assert _events(engine)[-1].payload == {"rehashed": True}


def test_disabled_users_cannot_act(engine: Engine, admin: Actor) -> None:
    _add(engine, admin, "olga", "operator", email="Olga@Example.com")
    assert actor_for_email(platform_for(engine), "OLGA@example.com").name == "olga"
    disable_user(platform_for(engine), admin, "olga")
    with pytest.raises(Forbidden, match="disabled"):
        actor_for(platform_for(engine), "olga")
    with pytest.raises(Forbidden, match="disabled"):
        actor_for_email(platform_for(engine), "olga@example.com")
    with pytest.raises(NotFound, match="no user named 'nobody'"):
        actor_for(platform_for(engine), "nobody")
    with pytest.raises(NotFound, match="no user has the email"):
        actor_for_email(platform_for(engine), "nobody@example.com")
    with pytest.raises(InvalidInput, match="already disabled"):
        disable_user(platform_for(engine), admin, "olga")
    enable_user(platform_for(engine), admin, "olga")
    assert actor_for(platform_for(engine), "olga").name == "olga"
    actions = [e.action for e in _events(engine)]
    assert actions[-2:] == ["user.disable", "user.enable"]


def test_roles_come_from_the_table_and_the_last_admin_stays(engine: Engine, admin: Actor) -> None:
    _add(engine, admin, "mona", "manager")
    info = set_roles(platform_for(engine), admin, "mona", ["engineer", "Manager", "manager"])
    assert info.roles == (Role.ENGINEER, Role.MANAGER)
    assert actor_for(platform_for(engine), "mona").roles == {Role.ENGINEER, Role.MANAGER}
    assert list_users(platform_for(engine), actor_for(platform_for(engine), "mona")).total == 2
    with pytest.raises(InvalidInput, match="would leave no enabled admin"):
        set_roles(platform_for(engine), admin, "root", ["engineer"])
    with pytest.raises(InvalidInput, match="would leave no enabled admin"):
        disable_user(platform_for(engine), admin, "root")
    with pytest.raises(Forbidden, match="needs the role admin"):
        set_roles(platform_for(engine), actor_for(platform_for(engine), "mona"), "mona", ["admin"])
    set_roles(platform_for(engine), admin, "mona", ["admin"])
    set_roles(platform_for(engine), admin, "root", ["engineer"])
    assert actor_for(platform_for(engine), "root").roles == {Role.ENGINEER}
    payloads = [e.payload for e in _events(engine) if e.action == "user.set_roles"]
    assert payloads[-1] == {"before": ["admin"], "after": ["engineer"]}


def test_who_may_list_users_and_set_passwords(engine: Engine, admin: Actor) -> None:
    _add(engine, admin, "olga", "operator")
    _add(engine, admin, "erin", "engineer")
    olga = Actor.of("olga", ["operator"])
    with pytest.raises(Forbidden, match="may not list users"):
        list_users(platform_for(engine), olga)
    listed = list_users(platform_for(engine), Actor.of("mona", ["manager"]), limit=2)
    assert ([u.name for u in listed.items], listed.total, listed.next_offset) == (
        ["erin", "olga"],
        3,
        2,
    )
    rest = list_users(platform_for(engine), Actor.of("mona", ["manager"]), offset=2, limit=2)
    assert ([u.name for u in rest.items], rest.next_offset) == (["root"], None)
    set_password(platform_for(engine), olga, "olga", "my own new one")
    with pytest.raises(Forbidden, match="may not set the password of 'erin'"):
        set_password(platform_for(engine), olga, "erin", "not yours either")
    with pytest.raises(InvalidInput, match="at least 8"):
        set_password(platform_for(engine), olga, "olga", "tiny")
    assert authenticate(platform_for(engine), "olga", "my own new one").name == "olga"
    assert _failure_message(engine, "erin", "not yours either") == FAILED_MESSAGE
