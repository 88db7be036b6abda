"""People who use the console, with their roles and (argon2) password hashes."""

from __future__ import annotations

from datetime import datetime

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
