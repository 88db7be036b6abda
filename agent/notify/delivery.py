"""Delivering queued notifications, in the worker: apprise for its channels, a signed POST for
webhooks, retried with backoff until the channel takes the message.

A delivery never runs on a run's path: runs only write the reviews the event finder reads later.
Each due row is claimed by pushing its next attempt a lease ahead (``FOR UPDATE SKIP LOCKED``
where the database has it), so two workers never send the same row at once; a failure schedules
the next attempt (exponential backoff with jitter, from tenacity) and keeps the error for the
System status page; after ``MAX_ATTEMPTS`` the row is ``failed`` and stays there to be seen.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlmodel import col, select
from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from agent.errors import ConfigurationError
from agent.notify.config import Channel, NotifyConfig
from agent.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from agent.platform import Platform
from storage.engine import write_session
from storage.models import Notification
from storage.types import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 30
"""About ten hours of retries with the backoff below: a receiver down for hours still gets every
message when it comes back."""
CLAIM_S = 120
_BATCH = 50
_BACKOFF = wait_exponential_jitter(multiplier=2, max=1800, exp_base=2, jitter=2)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int
    gave_up: int


def next_delay_s(attempts: int) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones (tenacity's backoff)."""
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = attempts
    return float(_BACKOFF(state))


def deliver_due(
    platform: Platform,
    config: NotifyConfig,
    *,
    now: datetime | None = None,
    http: httpx.Client | None = None,
) -> DeliveryReport:
    """Send every queued message whose attempt is due; returns what happened."""
    moment = now or utcnow()
    with write_session(platform.engine) as session:
        due = session.exec(
            select(Notification)
            .where(col(Notification.status) == "pending")
            .where(col(Notification.next_attempt_at) <= moment)
            .order_by(col(Notification.next_attempt_at), col(Notification.id))
            .limit(_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        claimed = [
            (row.id, row.channel, row.subject, row.body, row.payload, row.attempts) for row in due
        ]
        for row in due:
            row.next_attempt_at = moment + timedelta(seconds=CLAIM_S)
            session.add(row)
    sent = failed = gave_up = 0
    client = http or platform.http
    for row_id, channel_name, subject, body, payload, attempts in claimed:
        channel = config.channels.get(channel_name)
        error = (
            f"the channel {channel_name} is no longer configured"
            if channel is None
            else _send(channel, subject, body, payload, client)
        )
        with write_session(platform.engine) as session:
            current = session.get(Notification, row_id)
            if current is None:  # pragma: no cover - rows are never deleted
                continue
            current.attempts = attempts + 1
            if error is None:
                current.status = "sent"
                current.delivered_at = utcnow()
                current.last_error = None
                sent += 1
            else:
                current.last_error = error[:1000]
                if current.attempts >= MAX_ATTEMPTS:
                    current.status = "failed"
                    gave_up += 1
                else:
                    delay = next_delay_s(current.attempts)
                    current.next_attempt_at = moment + timedelta(seconds=delay)
                failed += 1
                log.warning("notification %s to %s failed: %s", row_id, channel_name, error)
            session.add(current)
    return DeliveryReport(sent, failed, gave_up)


def _send(
    channel: Channel, subject: str, body: str, payload: dict[str, object], http: httpx.Client
) -> str | None:
    """Send one message; None when it was taken, else why not (one line, no secret)."""
    if channel.webhook is not None:
        return _post_webhook(channel, subject, body, payload, http)
    import apprise  # 0.1 s to import: only where a message goes through it

    try:
        url = channel.resolved_url()
    except ConfigurationError as exc:
        return str(exc)
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return f"the channel {channel.name} has a URL apprise does not understand"
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        delivered = notifier.notify(title=subject, body=body, body_format=apprise.NotifyFormat.TEXT)
    if delivered:
        return None
    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"{channel.name} did not take the message"


def _post_webhook(
    channel: Channel, subject: str, body: str, payload: dict[str, object], http: httpx.Client
) -> str | None:
    try:
        secret = channel.secret()
    except ConfigurationError as exc:
        return str(exc)
    content = json.dumps(
        {"subject": subject, "text": body, **payload}, sort_keys=True, separators=(",", ":")
    ).encode()
    timestamp = int(time.time())
    try:
        response = http.post(
            channel.webhook or "",
            content=content,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: signature(secret, timestamp, content),
            },
            timeout=channel.timeout_s,
        )
    except httpx.HTTPError as exc:
        return f"{channel.name}: {type(exc).__name__}: {exc}"
    if response.status_code >= 300:
        return f"{channel.name}: the receiver answered {response.status_code}"
    return None
