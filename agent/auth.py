"""Passwords and sign-in: argon2id hashes, one failure message, and lockout after failures.

``authenticate`` answers every failure (unknown name, wrong password, disabled or locked
account) with the same ``AuthenticationFailed`` message and does the same argon2 work, so
neither the message nor the timing tells a guesser which part was wrong. After
``MAX_FAILURES`` consecutive failures an account is locked for ``LOCK_BASE``, doubling with
each further failure up to ``LOCK_MAX``; attempts while locked are refused without checking the
password and do not extend the lock, so a guesser cannot keep the owner out indefinitely.
"""

from __future__ import annotations

import functools
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Session, select

from agent.actors import Actor
from agent.errors import AuthenticationFailed, InvalidInput
from agent.platform import Platform
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.models import User
from storage.types import utcnow

logger = logging.getLogger(__name__)

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_FAILURES = 5
LOCK_BASE = timedelta(seconds=30)
LOCK_MAX = timedelta(hours=1)
ANONYMOUS = "anonymous"
FAILED_MESSAGE = "sign-in failed: the name or password is wrong, or the account is locked."

_hasher: Any = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` after checking its length.

    Raises:
        InvalidInput: shorter than ``MIN_PASSWORD`` or longer than ``MAX_PASSWORD`` characters.
    """
    check_password(password)
    return str(_hasher.hash(password))


def check_password(password: str) -> None:
    """Raise ``InvalidInput`` unless the password has an acceptable length."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"a password is limited to {MAX_PASSWORD} characters.")


def generate_password() -> str:
    """A strong random password (about 144 bits) for a new account."""
    return secrets.token_urlsafe(18)


def lock_duration(failures: int) -> timedelta:
    """How long an account stays locked after ``failures`` consecutive failures."""
    if failures < MAX_FAILURES:
        return timedelta(0)
    doubled = LOCK_BASE * (1 << min(failures - MAX_FAILURES, 20))
    return min(doubled, LOCK_MAX)


def authenticate(
    platform: Platform, name: str, password: str, *, now: datetime | None = None
) -> Actor:
    """Check a name and password and return the signed-in ``Actor``.

    There is no actor yet, so the platform is the only thing before the subject. It runs two
    transactions: a failed attempt must be recorded (and committed) even though the call then
    raises.

    Args:
        platform: the installation.
        name: the user name.
        password: the password as typed.
        now: the current time (tests pass one to step past a lock).

    Raises:
        AuthenticationFailed: with ``FAILED_MESSAGE`` whatever the cause.
    """
    moment = now or utcnow()
    with read_session(platform.engine) as session:
        user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        _verify(_dummy_hash(), password)
        raise AuthenticationFailed(FAILED_MESSAGE)
    refusal = _refusal(user, moment)
    matched = _verify(user.password_hash or _dummy_hash(), password) and refusal is None
    rehashed = None
    if matched and user.password_hash and _hasher.check_needs_rehash(user.password_hash):
        rehashed = str(_hasher.hash(password))
    with write_session(platform.engine) as session:
        current = session.exec(select(User).where(User.id == user.id).with_for_update()).one()
        # The hash may have changed since it was read; the password was checked against the old.
        matched = matched and current.password_hash == user.password_hash
        if matched:
            _record_success(session, current, moment, rehashed)
        else:
            _record_failure(session, current, moment, refusal or "password")
    if not matched:
        raise AuthenticationFailed(FAILED_MESSAGE)
    return Actor.of(current.name, current.roles)


def _refusal(user: User, moment: datetime) -> str | None:
    """Why the account may not sign in whatever the password, or None."""
    if user.disabled:
        return "disabled"
    if user.locked_until is not None and user.locked_until > moment:
        return "locked"
    if user.password_hash is None:
        return "no password"
    return None


def _verify(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError):
        logger.warning("a stored password hash could not be checked; treating it as a mismatch")
        return False


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when there is no real one, so every failure costs the same."""
    return str(_hasher.hash(secrets.token_urlsafe(16)))


def _record_success(session: Session, user: User, moment: datetime, rehashed: str | None) -> None:
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = moment
    if rehashed is not None:
        user.password_hash = rehashed
    session.add(user)
    append_event(
        session,
        actor=user.name,
        action="user.login",
        target_type="user",
        target_id=user.name,
        payload={"rehashed": rehashed is not None},
    )


def _record_failure(session: Session, user: User, moment: datetime, reason: str) -> None:
    payload: dict[str, Any] = {"reason": reason}
    if reason == "password":
        user.failed_logins += 1
        payload["failed_logins"] = user.failed_logins
        duration = lock_duration(user.failed_logins)
        if duration:
            user.locked_until = moment + duration
            payload["locked_until"] = user.locked_until.isoformat()
            logger.warning(
                "user %s locked for %s after %d failed sign-ins",
                user.name,
                duration,
                user.failed_logins,
            )
        session.add(user)
    # Who tried is unknown; the event's target is the account that was tried.
    append_event(
        session,
        actor=ANONYMOUS,
        action="user.login_failed",
        target_type="user",
        target_id=user.name,
        payload=payload,
    )


def authenticate_email(platform: Platform, email: str, *, issuer: str = "oidc") -> Actor:
    """Sign in a user whose identity provider vouched for ``email`` (single sign-on).

    The roles come from the users table, never from the provider. The sign-in is audited.

    Raises:
        AuthenticationFailed: no enabled account has this email.
    """
    address = email.strip().lower()
    with write_session(platform.engine) as session:
        user = session.exec(select(User).where(User.email == address)).first()
        if user is None or user.disabled:
            append_event(
                session,
                actor=ANONYMOUS,
                action="user.login_failed",
                target_type="user",
                target_id=user.name if user else address,
                payload={"reason": "disabled" if user else "unknown email", "issuer": issuer},
            )
            failed = True
        else:
            user.last_login_at = utcnow()
            session.add(user)
            append_event(
                session,
                actor=user.name,
                action="user.login",
                target_type="user",
                target_id=user.name,
                payload={"issuer": issuer},
            )
            failed = False
            actor = Actor.of(user.name, user.roles)
    if failed:
        raise AuthenticationFailed(
            f"no enabled Steward account has the email {address!r}; ask an admin to add it."
        )
    return actor
