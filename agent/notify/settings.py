"""The notification settings an admin edits in the console, and which configuration is in force.

``STEWARD_NOTIFY_FILE``, when set, is in force (a file under version control wins over a form);
otherwise what an admin saved on the System status page. Saving checks the document exactly as
the file is checked, and is audited.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from agent.actors import USER_ADMIN_ROLES, Actor, require
from agent.errors import ConfigurationError, InvalidInput
from agent.notify.config import FILE_VARIABLE, NotifyConfig, configured, parse_config
from agent.platform import Platform
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.models import NotifySettings

_ROW = 1
MAX_YAML = 20_000


@dataclass(frozen=True)
class SavedSettings:
    """What an admin saved (empty: nothing), by whom and when, and the file that overrides it."""

    source_yaml: str
    updated_by: str | None
    updated_at: datetime | None
    file: Path | None


def current_config(platform: Platform) -> NotifyConfig | None:
    """The configuration in force: the file if ``STEWARD_NOTIFY_FILE`` is set, else the saved
    one, else None (nothing is sent).

    Raises:
        ConfigurationError: the file, or the saved document, is not valid (any more).
    """
    from_file = configured()
    if from_file is not None:
        return from_file
    with read_session(platform.engine) as session:
        row = session.get(NotifySettings, _ROW)
    if row is None or not row.source_yaml.strip():
        return None
    return parse_config(yaml.safe_load(row.source_yaml), where="the saved notification settings")


def saved_settings(platform: Platform, actor: Actor) -> SavedSettings:
    """What is saved in the console.

    Raises:
        Forbidden: the actor is not an admin.
    """
    require(actor, USER_ADMIN_ROLES, "read the notification settings")
    with read_session(platform.engine) as session:
        row = session.get(NotifySettings, _ROW)
    file = _file()
    if row is None:
        return SavedSettings("", None, None, file)
    return SavedSettings(row.source_yaml, row.updated_by, row.updated_at, file)


def save_settings(platform: Platform, actor: Actor, source_yaml: str) -> NotifyConfig | None:
    """Check and save the channels and routes (empty text: send nothing); returns them.

    Raises:
        Forbidden: the actor is not an admin.
        InvalidInput: not YAML, too long, or not a valid configuration (one sentence saying
            where).
    """
    require(actor, USER_ADMIN_ROLES, "change the notification settings")
    text = source_yaml.strip()
    if len(text) > MAX_YAML:
        raise InvalidInput(f"the settings are {len(text):,} characters; at most {MAX_YAML:,}.")
    config: NotifyConfig | None = None
    if text:
        try:
            document: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise InvalidInput(f"the settings are not YAML{where}.") from exc
        try:
            config = parse_config(document, where="the settings")
        except ConfigurationError as exc:
            raise InvalidInput(str(exc)) from exc
    with write_session(platform.engine) as session:
        row = session.get(NotifySettings, _ROW) or NotifySettings(
            id=_ROW, source_yaml="", updated_by=actor.name
        )
        row.source_yaml = text
        row.updated_by = actor.name
        session.add(row)
        append_event(
            session,
            actor=actor.name,
            action="notify.configure",
            target_type="notify_settings",
            target_id=_ROW,
            payload={
                "channels": sorted(config.channels) if config else [],
                "routes": len(config.routes) if config else 0,
            },
        )
    return config


def _file() -> Path | None:
    raw = os.environ.get(FILE_VARIABLE, "").strip()
    return Path(raw) if raw else None
