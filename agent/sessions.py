"""Console sessions that survive a reload, a second tab and a followed link.

A sign-in opens a session row and hands the browser a one-time *grant*; the browser redeems it
(``POST /auth/session``, served by ``console/server.py``) for an HTTP-only cookie that holds
the session's token, signed with ``itsdangerous`` and dated. Every later page load presents
the cookie; ``resume`` checks the signature, the token against the row, and the row against
its timeouts and the account. Only SHA-256 hashes of the grant and the token are stored, so a
copy of the database signs nobody in.

```
sign in ─▶ open_session (row + grant) ─▶ browser redeems grant ─▶ cookie = sign(token)
reload / second tab ─▶ resume(cookie) ─▶ Actor        each rerun ─▶ check(session id)
sign out, account disabled, roles changed ─▶ revoked_at set ─▶ every tab signed out
```

A session ends at the first of: sign-out (``revoke``), the account disabled or its roles
changed (``revoke_user_sessions``, called in the same transaction by ``agent.users``), no use
for the idle timeout, or the absolute timeout since sign-in. Both timeouts are settings
(``STEWARD_SESSION_IDLE_MINUTES``, ``STEWARD_SESSION_MAX_HOURS``); the signing key is
``STEWARD_SESSION_SECRET``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from sqlmodel import Session, col, select

from agent.actors import Actor
from agent.errors import ConfigurationError
from agent.platform import Platform
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.models import User, UserSession
from storage.types import utcnow

log = logging.getLogger(__name__)

COOKIE = "steward_session"
IDLE_VARIABLE = "STEWARD_SESSION_IDLE_MINUTES"
MAX_VARIABLE = "STEWARD_SESSION_MAX_HOURS"
SECRET_VARIABLE = "STEWARD_SESSION_SECRET"  # noqa: S105 - the name of a setting
DEFAULT_IDLE = timedelta(minutes=60)
DEFAULT_MAX = timedelta(hours=12)
GRANT_TTL = timedelta(minutes=2)
MIN_SECRET = 32
# A session's last use is written at most this often, so a page's reruns are not each a write.
TOUCH_EVERY = timedelta(minutes=1)
_SALT = "steward.console-session"
# Used when no secret is configured: a restart then signs everybody out, and consoles that
# share a database do not accept each other's cookies (the README says to set one for teams).
_PROCESS_SECRET = secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: ``idle`` without use, ``absolute`` since sign-in at most."""

    idle: timedelta = DEFAULT_IDLE
    absolute: timedelta = DEFAULT_MAX
    secret: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SessionPolicy:
        """The policy the settings give.

        Raises:
            ConfigurationError: a timeout that is not a positive number, an idle timeout
                longer than the absolute one, or a secret shorter than 32 characters.
        """
        env = os.environ if environ is None else environ
        idle = _positive(env, IDLE_VARIABLE, DEFAULT_IDLE.total_seconds() / 60, "minutes")
        absolute = _positive(env, MAX_VARIABLE, DEFAULT_MAX.total_seconds() / 3600, "hours")
        policy = cls(
            timedelta(minutes=idle), timedelta(hours=absolute), env.get(SECRET_VARIABLE, "")
        )
        if policy.idle > policy.absolute:
            raise ConfigurationError(
                f"{IDLE_VARIABLE} ({idle:g} minutes) is longer than {MAX_VARIABLE} "
                f"({absolute:g} hours); make the idle timeout the shorter one."
            )
        if policy.secret and len(policy.secret) < MIN_SECRET:
            raise ConfigurationError(
                f"{SECRET_VARIABLE} must be at least {MIN_SECRET} characters "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)."
            )
        return policy

    def signer(self) -> TimestampSigner:
        return TimestampSigner(self.secret or _PROCESS_SECRET, salt=_SALT)


def _positive(env: Mapping[str, str], name: str, default: float, unit: str) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"{name} must be a positive number of {unit}, not {raw!r}.")
    return value


@dataclass(frozen=True)
class Resumed:
    """A session found valid: who it belongs to, with the roles they hold now."""

    session_id: int
    actor: Actor


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def open_session(
    platform: Platform, actor: Actor, *, policy: SessionPolicy | None = None
) -> tuple[int, str]:
    """Open a session for ``actor`` (just signed in); returns its id and the one-time grant the
    browser redeems for the cookie within ``GRANT_TTL``."""
    policy = policy or SessionPolicy.from_env()
    grant = secrets.token_urlsafe(32)
    now = utcnow()
    with write_session(platform.engine) as session:
        user = session.exec(select(User).where(User.name == actor.name)).one()
        row = UserSession(
            user_id=user.id or 0,
            grant_hash=_digest(grant),
            grant_expires_at=now + GRANT_TTL,
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.absolute,
        )
        session.add(row)
        session.flush()
        session_id = row.id or 0
    return session_id, grant


def redeem_grant(
    platform: Platform, grant: str, *, policy: SessionPolicy | None = None
) -> tuple[str, int] | None:
    """Exchange a grant (once, before it expires) for the signed cookie value; returns it with
    the cookie's lifetime in seconds, or None when the grant is unknown, used or expired."""
    policy = policy or SessionPolicy.from_env()
    if not grant or len(grant) > 200:
        return None
    now = utcnow()
    token = secrets.token_urlsafe(32)
    with write_session(platform.engine) as session:
        row = session.exec(
            select(UserSession)
            .where(col(UserSession.grant_hash) == _digest(grant))
            .with_for_update()
        ).first()
        if row is None or row.revoked_at is not None:
            return None
        expired = row.grant_expires_at is None or row.grant_expires_at < now
        # A grant works once, whether or not it was still fresh.
        row.grant_hash = None
        row.grant_expires_at = None
        if expired:
            session.add(row)
            return None
        row.token_hash = _digest(token)
        session.add(row)
        lifetime = int((row.expires_at - now).total_seconds())
    return policy.signer().sign(token).decode(), max(lifetime, 0)


def resume(
    platform: Platform, cookie: str, *, policy: SessionPolicy | None = None
) -> Resumed | None:
    """The session a browser's cookie stands for, if it is still valid (a reload or a second
    tab); None otherwise. A valid session's last use moves to now."""
    policy = policy or SessionPolicy.from_env()
    try:
        token = (
            policy.signer().unsign(cookie, max_age=int(policy.absolute.total_seconds())).decode()
        )
    except (BadSignature, SignatureExpired, UnicodeDecodeError):
        return None
    with read_session(platform.engine) as session:
        row = session.exec(
            select(UserSession).where(col(UserSession.token_hash) == _digest(token))
        ).first()
    if row is None or row.id is None:
        return None
    return _valid(platform, row.id, policy)


def check(
    platform: Platform, session_id: int, *, policy: SessionPolicy | None = None
) -> Resumed | None:
    """The session ``session_id`` if it is still valid (every rerun of a signed-in page asks,
    so a sign-out in another tab or a disabled account ends this one too); None otherwise."""
    return _valid(platform, session_id, policy or SessionPolicy.from_env())


def _valid(platform: Platform, session_id: int, policy: SessionPolicy) -> Resumed | None:
    now = utcnow()
    with read_session(platform.engine) as session:
        found = session.execute(
            sa.select(UserSession, User)
            .join(User, col(User.id) == col(UserSession.user_id))
            .where(col(UserSession.id) == session_id)
        ).first()
    if found is None:
        return None
    row, user = found
    ended = _ended(row, user, now, policy)
    if ended is not None:
        if row.revoked_at is None:
            _revoke_ids(platform, [session_id], ended)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        with write_session(platform.engine) as session:
            session.execute(
                sa.update(UserSession)
                .where(col(UserSession.id) == session_id)
                .values(last_seen_at=now)
            )
    return Resumed(session_id, Actor.of(user.name, user.roles))


def _ended(row: UserSession, user: User, now: datetime, policy: SessionPolicy) -> str | None:
    """Why the session is over, or None while it is valid."""
    if row.revoked_at is not None:
        return row.revoked_reason or "revoked"
    if row.token_hash is None and row.grant_hash is None:
        return "never redeemed"
    if user.disabled:
        return "account disabled"
    if now >= row.expires_at:
        return "absolute timeout"
    if now - row.last_seen_at >= policy.idle:
        return "idle timeout"
    return None


def revoke(platform: Platform, session_id: int, *, reason: str = "signed out") -> None:
    """End one session (sign-out): every tab that shares it is signed out at its next rerun."""
    _revoke_ids(platform, [session_id], reason)


def _revoke_ids(platform: Platform, ids: list[int], reason: str) -> None:
    with write_session(platform.engine) as session:
        session.execute(
            sa.update(UserSession)
            .where(col(UserSession.id).in_(ids), col(UserSession.revoked_at).is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason, grant_hash=None)
        )


def revoke_user_sessions(session: Session, user: User, *, reason: str, actor: str) -> int:
    """End every open session of ``user`` inside the caller's transaction (an admin disabled
    the account or changed its roles); returns how many ended, and audits it when any did."""
    result = session.execute(
        sa.update(UserSession)
        .where(col(UserSession.user_id) == user.id, col(UserSession.revoked_at).is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason, grant_hash=None)
    )
    ended = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if ended:
        append_event(
            session,
            actor=actor,
            action="user.sessions_revoked",
            target_type="user",
            target_id=user.name,
            payload={"sessions": ended, "reason": reason},
        )
    return ended
