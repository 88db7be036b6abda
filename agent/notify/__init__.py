"""Notifications: the review queue comes to the people who work it.

Modules:
    config    channels (apprise URLs, signed webhooks) and routing rules, from
              ``STEWARD_NOTIFY_FILE``
    settings  the same, saved by an admin in the console (the file wins when set)
    events    what happened that routes send somewhere, queued once per event and channel
    delivery  sending in the worker, retried with backoff; never on a run's path
    signing   the webhook signature (HMAC-SHA256 over timestamp and body) and its check
    status    the outbox per channel, for the System status page
"""

from __future__ import annotations

import logging

from agent.notify.config import FILE_VARIABLE, NotifyConfig, configured, load_config, parse_config
from agent.notify.delivery import DeliveryReport, deliver_due
from agent.notify.events import collect_events
from agent.notify.settings import SavedSettings, current_config, save_settings, saved_settings
from agent.notify.status import ChannelHealth, NotificationStatus, notification_status
from agent.platform import Platform

log = logging.getLogger(__name__)

__all__ = [
    "FILE_VARIABLE",
    "ChannelHealth",
    "DeliveryReport",
    "NotificationStatus",
    "NotifyConfig",
    "SavedSettings",
    "collect_events",
    "configured",
    "current_config",
    "deliver_due",
    "load_config",
    "notification_status",
    "notify_once",
    "parse_config",
    "save_settings",
    "saved_settings",
]


def notify_once(platform: Platform) -> DeliveryReport | None:
    """The worker's notification job: queue new events, send what is due (None: not set up)."""
    config = current_config(platform)
    if config is None:
        return None
    collect_events(platform, config)
    return deliver_due(platform, config)
