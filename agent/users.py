"""People: accounts, roles, enabling and disabling, passwords, and who an ``Actor`` is.

Admins manage users. The one exception is the very first account (``add_first_user``): while
the users table is empty there is nobody who could authorize anything, so the first account
may be created without an actor, and it must hold the admin role so that it can add the rest.
An admin can never remove the last enabled admin (by disabling it or taking the role away).

Every function takes the ``Platform`` first and the acting ``Actor`` second (the bootstrap and
the look-ups that find who an actor is have none yet), and runs in its own transaction: a change
and its audit event commit together or not at all. Passwords and their hashes never appear in an
audit payload, a log line or a read model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from agent.actors import USER_ADMIN_ROLES, Actor, require
from agent.auth import hash_password
from agent.errors import Forbidden, InvalidInput, NotFound
from agent.platform import Platform
from agent.reads.paging import DEFAULT_LIMIT, Page, check_window
from agent.sessions import revoke_user_sessions
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import Role
from storage.models import User

NAME_PATTERN = re.compile(r"[a-z0-9_.-]{1,64}")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+")
LIST_ROLES = frozenset({Role.ADMIN, Role.MANAGER})
_BOOTSTRAP_LOCK_KEY = 0x5354455741524402  # PostgreSQL advisory lock: one first user at a time


@dataclass(frozen=True)
class UserInfo:
    """An account as shown to admins: never the password hash."""

    id: int
    name: str
    display_name: str
    email: str | None
    roles: tuple[Role, ...]
    disabled: bool
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime
    has_password: bool


def add_user(
    platform: Platform,
    actor: Actor,
    name: str,
    roles: Iterable[str],
    *,
    password: str | None = None,
    email: str | None = None,
    display_name: str = "",
) -> UserInfo:
    """Create an account.

    Args:
        platform: the installation.
        actor: an admin.
        name: 1-64 characters of ``a-z 0-9 _ . -``.
        roles: one or more of operator, manager, engineer, admin.
        password: at least 8 characters; None makes an account that can only sign in through
            single sign-on (matched by email).
        email: unique, compared without regard to case.
        display_name: the name shown in the console.

    Raises:
        Forbidden: the actor is not an admin.
        InvalidInput: a malformed or taken name or email, an unknown role, a short password.
    """
    require(actor, USER_ADMIN_ROLES, f"add user {name!r}")
    with write_session(platform.engine) as session:
        return _insert(
            session,
            actor_name=actor.name,
            name=name,
            roles=roles,
            password=password,
            email=email,
            display_name=display_name,
        )


def add_first_user(
    platform: Platform,
    name: str,
    roles: Iterable[str],
    *,
    password: str,
    email: str | None = None,
    display_name: str = "",
) -> UserInfo:
    """Create the first account of an empty installation (the bootstrap path, no actor).

    The audit event names the new user as its own actor, with ``action="user.bootstrap"``.

    Raises:
        Forbidden: there are users already; an admin must add the next ones with ``add_user``.
        InvalidInput: the roles do not include admin, or a field is malformed.
    """
    with write_session(platform.engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(_BOOTSTRAP_LOCK_KEY)))
        if session.exec(select(func.count()).select_from(User)).one() > 0:
            raise Forbidden(
                "users exist already: only an admin may add users "
                "(steward users add ... --as ADMIN)."
            )
        roles = list(roles)
        if Role.ADMIN.value not in {str(r) for r in roles}:
            raise InvalidInput("the first user must hold the admin role, to be able to add others.")
        return _insert(
            session,
            actor_name=name,
            name=name,
            roles=roles,
            password=password,
            email=email,
            display_name=display_name,
            bootstrap=True,
        )


def set_roles(platform: Platform, actor: Actor, name: str, roles: Iterable[str]) -> UserInfo:
    """Replace a user's roles.

    Raises:
        Forbidden: the actor is not an admin.
        NotFound: no such user.
        InvalidInput: an unknown or empty role list, or it would leave no enabled admin.
    """
    require(actor, USER_ADMIN_ROLES, f"change the roles of {name!r}")
    new_roles = _parse_roles(roles)
    with write_session(platform.engine) as session:
        user = _user(session, name, lock=True)
        before = sorted(user.roles)
        if before == new_roles:
            raise InvalidInput(f"{name} already holds exactly {', '.join(new_roles)}.")
        if Role.ADMIN.value not in new_roles:
            _keep_an_admin(session, user, f"take the admin role from {name}")
        user.roles = new_roles
        session.add(user)
        _audit(session, actor.name, "user.set_roles", user, {"before": before, "after": new_roles})
        # Signed-in sessions were granted on the old roles: they end, and the user signs in
        # again to work with the new ones.
        revoke_user_sessions(session, user, reason="roles changed", actor=actor.name)
        return _info(user)


def disable_user(platform: Platform, actor: Actor, name: str) -> UserInfo:
    """Stop a user from signing in or acting; their history stays.

    Raises:
        Forbidden: the actor is not an admin.
        NotFound: no such user.
        InvalidInput: already disabled, or the last enabled admin.
    """
    require(actor, USER_ADMIN_ROLES, f"disable user {name!r}")
    with write_session(platform.engine) as session:
        user = _user(session, name, lock=True)
        if user.disabled:
            raise InvalidInput(f"{name} is already disabled.")
        _keep_an_admin(session, user, f"disable {name}")
        user.disabled = True
        revoke_user_sessions(session, user, reason="account disabled", actor=actor.name)
        session.add(user)
        _audit(session, actor.name, "user.disable", user, {})
        return _info(user)


def enable_user(platform: Platform, actor: Actor, name: str) -> UserInfo:
    """Let a disabled or locked-out user sign in again (clears the failed sign-in count).

    Raises:
        Forbidden: the actor is not an admin.
        NotFound: no such user.
        InvalidInput: the user is neither disabled nor locked.
    """
    require(actor, USER_ADMIN_ROLES, f"enable user {name!r}")
    with write_session(platform.engine) as session:
        user = _user(session, name, lock=True)
        if not user.disabled and user.failed_logins == 0 and user.locked_until is None:
            raise InvalidInput(f"{name} is already enabled and not locked.")
        payload = {"was_disabled": user.disabled, "failed_logins": user.failed_logins}
        user.disabled = False
        user.failed_logins = 0
        user.locked_until = None
        session.add(user)
        _audit(session, actor.name, "user.enable", user, payload)
        return _info(user)


def set_password(platform: Platform, actor: Actor, name: str, password: str) -> None:
    """Set a user's password (an admin for anyone, or a user for themself).

    Also clears a lockout, since the person now knows the new password.

    Raises:
        Forbidden: the actor is neither an admin nor the user.
        NotFound: no such user.
        InvalidInput: the password is too short or too long.
    """
    if actor.name != name:
        require(actor, USER_ADMIN_ROLES, f"set the password of {name!r}")
    password_hash = hash_password(password)
    with write_session(platform.engine) as session:
        user = _user(session, name, lock=True)
        user.password_hash = password_hash
        user.failed_logins = 0
        user.locked_until = None
        session.add(user)
        _audit(session, actor.name, "user.set_password", user, {})


def list_users(
    platform: Platform, actor: Actor, *, offset: int = 0, limit: int = DEFAULT_LIMIT
) -> Page[UserInfo]:
    """The accounts by name (admins and managers): ``limit`` of them after the first ``offset``.

    Raises:
        Forbidden: the actor is neither admin nor manager.
        InvalidInput: the window is out of range.
    """
    require(actor, LIST_ROLES, "list users")
    check_window(offset, limit, "users")
    with read_session(platform.engine) as session:
        total = session.exec(select(func.count()).select_from(User)).one()
        users = session.exec(
            select(User).order_by(col(User.name)).offset(offset).limit(limit)
        ).all()
        return Page(tuple(_info(user) for user in users), total, offset, limit)


def actor_for(platform: Platform, name: str) -> Actor:
    """The ``Actor`` for a user name, with the roles the users table holds now.

    Raises:
        NotFound: no such user.
        Forbidden: the account is disabled.
    """
    with read_session(platform.engine) as session:
        return _actor(_user(session, name))


def actor_for_email(platform: Platform, email: str) -> Actor:
    """The ``Actor`` whose account has this email (for single sign-on), ignoring case.

    Raises:
        NotFound: no account has this email.
        Forbidden: the account is disabled.
    """
    with read_session(platform.engine) as session:
        user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        raise NotFound(f"no user has the email {email.strip()!r}.")
    return _actor(user)


def _insert(
    session: Session,
    *,
    actor_name: str,
    name: str,
    roles: Iterable[str],
    password: str | None,
    email: str | None,
    display_name: str,
    bootstrap: bool = False,
) -> UserInfo:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"user name {name!r} must be 1-64 characters of a-z, 0-9, '_', '.', '-'."
        )
    role_list = _parse_roles(roles)
    email = _normalize_email(email)
    if len(display_name) > 200:
        raise InvalidInput("a display name is limited to 200 characters.")
    password_hash = hash_password(password) if password is not None else None
    if session.exec(select(User.id).where(User.name == name)).first() is not None:
        raise InvalidInput(f"a user named {name!r} already exists.")
    if email and session.exec(select(User.id).where(User.email == email)).first() is not None:
        raise InvalidInput(f"another user already has the email {email!r}.")
    user = User(
        name=name,
        display_name=display_name.strip(),
        email=email,
        password_hash=password_hash,
        roles=role_list,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # the same name or email was added concurrently
        raise InvalidInput(f"a user named {name!r} or with that email already exists.") from None
    payload = {
        "roles": role_list,
        "email": email,
        "display_name": user.display_name,
        "has_password": password_hash is not None,
    }
    _audit(session, actor_name, "user.bootstrap" if bootstrap else "user.add", user, payload)
    return _info(user)


def _parse_roles(roles: Iterable[str]) -> list[str]:
    parsed: set[str] = set()
    for role in roles:
        try:
            parsed.add(Role(str(role).strip().lower()).value)
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise InvalidInput(f"{role!r} is not a role; the roles are {allowed}.") from None
    if not parsed:
        raise InvalidInput("a user needs at least one role.")
    return sorted(parsed)


def _normalize_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    email = email.strip().lower()
    if len(email) > 320 or not EMAIL_PATTERN.fullmatch(email):
        raise InvalidInput(f"{email!r} is not an email address.")
    return email


def _keep_an_admin(session: Session, user: User, action: str) -> None:
    """Refuse a change that would leave no enabled admin to manage users."""
    if user.disabled or Role.ADMIN.value not in user.roles:
        return
    others = session.exec(select(User).where(User.id != user.id, col(User.disabled).is_(False)))
    if not any(Role.ADMIN.value in other.roles for other in others):
        raise InvalidInput(f"cannot {action}: it would leave no enabled admin.")


def _user(session: Session, name: str, *, lock: bool = False) -> User:
    query = select(User).where(User.name == name)
    if lock:
        query = query.with_for_update()
    user = session.exec(query).first()
    if user is None:
        raise NotFound(f"there is no user named {name!r}.")
    return user


def _actor(user: User) -> Actor:
    if user.disabled:
        raise Forbidden(f"the account {user.name!r} is disabled.")
    return Actor.of(user.name, user.roles)


def _audit(
    session: Session, actor: str, action: str, user: User, payload: Mapping[str, object]
) -> None:
    append_event(
        session,
        actor=actor,
        action=action,
        target_type="user",
        target_id=user.name,
        payload=dict(payload),
    )


def _info(user: User) -> UserInfo:
    if user.id is None:  # pragma: no cover - rows are flushed before they are described
        raise RuntimeError("the user row has no id yet")
    return UserInfo(
        id=user.id,
        name=user.name,
        display_name=user.display_name,
        email=user.email,
        roles=tuple(Role(role) for role in user.roles),
        disabled=user.disabled,
        failed_logins=user.failed_logins,
        locked_until=user.locked_until,
        last_login_at=user.last_login_at,
        created_at=user.created_at,
        has_password=user.password_hash is not None,
    )
