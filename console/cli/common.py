"""Helpers every sub-command shares: opening the configured database, printing JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

from sqlalchemy.engine import Engine

from agent.platform import Platform
from agent.plugins import installed_registry
from storage.engine import check_connection, create_engine
from storage.migrate import require_head


class CommandError(Exception):
    """A one-line error for the person at the terminal (exit status 2)."""


def open_engine(*, require_schema: bool = True) -> Engine:
    """The engine for ``STEWARD_DATABASE_URL``, checked to be reachable and, unless
    ``require_schema`` is false (the ``db`` commands), to be at the schema head."""
    engine = create_engine()
    check_connection(engine)
    if require_schema:
        require_head(engine)
    return engine


def open_platform(*, require_schema: bool = True) -> Platform:
    """``open_engine`` with the installed tools: what every service and the worker take."""
    return Platform(open_engine(require_schema=require_schema), installed_registry())


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
