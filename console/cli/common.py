"""What every sub-command shares: the configured database, who acts, and JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from agent.actors import Actor
from agent.platform import Platform
from agent.plugins import installed_registry
from agent.reads.paging import DEFAULT_LIMIT, MAX_LIMIT, Page
from agent.users import actor_for
from console.cli.args import LIMIT, OFFSET, user_name
from storage.engine import check_connection, create_engine
from storage.migrate import require_head

ACTING_USER_VARIABLE = "STEWARD_USER"
T = TypeVar("T")


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


def read_source(file: str) -> str:
    """The text of a YAML document named on the command line (``-``: standard input).

    Raises:
        CommandError: the file does not exist, cannot be read or is not UTF-8 text.
    """
    if file == "-":
        return sys.stdin.read()
    path = Path(file)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{file}: no such file.") from None
    except UnicodeDecodeError:
        raise CommandError(f"{file}: not UTF-8 text.") from None
    except OSError as exc:
        raise CommandError(f"{file}: cannot read it ({exc.strerror or exc}).") from None


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
    """The name given with ``--as``, else ``$STEWARD_USER`` (checked when the command started,
    see ``agent.settings``), else None."""
    if args.acting_user:
        name: str = args.acting_user
        return name
    return os.environ.get(ACTING_USER_VARIABLE, "").strip() or None


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


def add_paging(parser: argparse.ArgumentParser, noun: str) -> None:
    """Add ``--limit`` and ``--offset`` to a list command, and ``--json``."""
    parser.add_argument(
        "--limit",
        type=LIMIT,
        default=DEFAULT_LIMIT,
        help=f"show at most this many {noun} (1 to {MAX_LIMIT}, default {DEFAULT_LIMIT})",
    )
    parser.add_argument(
        "--offset", type=OFFSET, default=0, help=f"skip this many {noun} first (default 0)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='machine-readable: {"items", "total", "offset", "limit", "next_offset"}',
    )


def print_page(
    page: Page[T],
    args: argparse.Namespace,
    line: Callable[[T], str],
    *,
    empty: str,
) -> None:
    """Print one page of a list, and where the rest is.

    With ``--json``: ``{"items": [...], "total": N, "offset": O, "limit": L, "next_offset": O2
    or null}``. As text: one line per item, then ``showing 1-100 of 431; next: --offset 100``.

    Args:
        page: the page a read returned.
        args: the command's arguments (``--json``).
        line: one item as a line of text.
        empty: what to print when nothing matches at all.
    """
    if args.json:
        print_json(page.as_dict())
        return
    for entry in page.items:
        print(line(entry))
    print(page_footer(page, empty))


def page_footer(page: Page[Any], empty: str) -> str:
    """The last line of a listed page: which items these are, of how many, and what next."""
    if not page.total:
        return empty
    if not page.items:
        return (
            f"nothing at --offset {page.offset}: {page.total} in all; "
            f"the last page starts at --offset {page.last_offset}"
        )
    shown = f"showing {page.offset + 1}-{page.offset + len(page.items)} of {page.total}"
    return f"{shown}; next: --offset {page.next_offset}" if page.has_more else shown


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
