"""People who use the console, with their roles and (argon2) password hashes, and their
signed-in console sessions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import JSONDoc, UTCDateTime, utcnow


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    display_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320, unique=True)
    password_hash: str | None = Field(default=None, max_length=256)
    roles: list[str] = Field(default_factory=list, sa_type=JSONDoc)
    disabled: bool = Field(default=False)
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UserSession(SQLModel, table=True):
    """A signed-in console session: what the browser's session cookie stands for.

    Only hashes are stored: ``token_hash`` of the cookie's token (set once the browser has
    redeemed the one-time ``grant``), ``grant_hash`` of that grant until then. A session ends
    when ``revoked_at`` is set, when ``expires_at`` passes, or when it has not been seen for
    the idle timeout.
    """

    __tablename__ = "user_sessions"
    __table_args__ = (sa.Index("ix_user_sessions_user_open", "user_id", "revoked_at"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id")
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    grant_hash: str | None = Field(default=None, max_length=64, unique=True)
    grant_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_reason: str = Field(default="", max_length=200)
