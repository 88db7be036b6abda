"""Bearer tokens of the MCP gateway: each maps one client to one Steward user and one agent.

Only a SHA-256 of each token is stored: tokens are 256-bit random strings, so a fast hash is
enough to make a stolen table useless (argon2 is for passwords a person chose) and lets a
request find its token by an indexed look-up.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class GatewayToken(SQLModel, table=True):
    __tablename__ = "gateway_tokens"

    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agents.id", index=True)
    user_id: int = Field(foreign_key="users.id")
    token_hash: str = Field(max_length=64, unique=True)
    label: str = Field(default="", max_length=200)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
