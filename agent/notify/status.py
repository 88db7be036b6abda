"""How notification delivery is doing, per channel, for the System status page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from agent.actors import READ_ROLES, Actor, require
from agent.errors import ConfigurationError
from agent.notify.settings import current_config
from agent.platform import Platform
from storage.engine import read_session
from storage.models import Notification


@dataclass(frozen=True)
class ChannelHealth:
    """One channel's outbox: what waits, what went, what was given up, and the last error."""

    channel: str
    pending: int
    sent: int
    failed: int
    retrying: int
    last_error: str | None
    oldest_pending: datetime | None


@dataclass(frozen=True)
class NotificationStatus:
    """Whether notifications are configured (or why the file is refused), and each channel."""

    configured: bool
    problem: str | None
    channels: tuple[ChannelHealth, ...]

    @property
    def failing(self) -> bool:
        return any(c.failed or c.retrying for c in self.channels)


def notification_status(platform: Platform, actor: Actor) -> NotificationStatus:
    """The outbox per channel, and the configuration's state.

    Raises:
        Forbidden: the actor holds no role.
    """
    require(actor, READ_ROLES, "read the system status")
    problem = None
    try:
        config = current_config(platform)
    except ConfigurationError as exc:
        config, problem = None, str(exc)
    with read_session(platform.engine) as session:
        rows = session.execute(
            sa.select(
                col(Notification.channel),
                col(Notification.status),
                sa.func.count(),
                sa.func.sum(sa.case((col(Notification.last_error).is_not(None), 1), else_=0)),
                sa.func.min(col(Notification.created_at)),
            ).group_by(col(Notification.channel), col(Notification.status))
        ).all()
        errors = dict(
            session.execute(
                sa.select(col(Notification.channel), col(Notification.last_error))
                .where(col(Notification.last_error).is_not(None))
                .order_by(col(Notification.id))
            ).all()
        )
    counts: dict[str, dict[str, int]] = {}
    retrying: dict[str, int] = {}
    oldest: dict[str, datetime] = {}
    for channel, status, count, with_error, first in rows:
        counts.setdefault(channel, {})[status] = int(count)
        if status == "pending":
            retrying[channel] = int(with_error or 0)
            oldest[channel] = first
    channels = tuple(
        ChannelHealth(
            channel=name,
            pending=by_status.get("pending", 0),
            sent=by_status.get("sent", 0),
            failed=by_status.get("failed", 0),
            retrying=retrying.get(name, 0),
            last_error=errors.get(name),
            oldest_pending=oldest.get(name),
        )
        for name, by_status in sorted(counts.items())
    )
    return NotificationStatus(config is not None, problem, channels)
