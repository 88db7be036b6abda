"""What every sub-command shares: the configured database, who acts, and JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy.engine import Engine

from agent.actors import Actor
from agent.platform import Platform
from agent.plugins import installed_registry
from agent.users import actor_for
from console.cli.args import argv_problem, user_name
from storage.engine import check_connection, create_engine
from storage.migrate import require_head

ACTING_USER_VARIABLE = "STEWARD_USER"


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


def add_actor_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--as USER`` (default: ``$STEWARD_USER``) to a command."""
    parser.add_argument(
        "--as",
        dest="acting_user",
        metavar="USER",
        type=user_name,
        default=None,
        help=f"the user you act as; roles are checked (default: ${ACTING_USER_VARIABLE})",
    )


def acting_name(args: argparse.Namespace) -> str | None:
    """The name given with ``--as``, else ``$STEWARD_USER``, else None.

    Raises:
        CommandError: ``$STEWARD_USER`` is not valid UTF-8 text.
    """
    if args.acting_user:
        name: str = args.acting_user
        return name
    name = os.environ.get(ACTING_USER_VARIABLE, "").strip()
    if argv_problem([name]) is not None:
        raise CommandError(f"${ACTING_USER_VARIABLE} is not valid UTF-8 text; set it to a name.")
    return name or None


def acting_user(args: argparse.Namespace, platform: Platform) -> Actor:
    """The ``Actor`` named by ``--as`` (or ``$STEWARD_USER``), with roles from the users table.

    Raises:
        CommandError: no acting user was named.
        NotFound, Forbidden: the user does not exist or is disabled.
    """
    name = acting_name(args)
    if name is None:
        raise CommandError(
            f"name the user you act as with --as USER (or set {ACTING_USER_VARIABLE})."
        )
    return actor_for(platform, name)


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON; read models (dataclasses) print as their fields."""
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=_plain)
    sys.stdout.write("\n")


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)
