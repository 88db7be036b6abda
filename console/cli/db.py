"""``steward db upgrade | current | downgrade``: the schema's migrations."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from alembic.util.exc import CommandError as AlembicError
from sqlalchemy.engine import Engine

from console.cli.common import CommandError, open_engine, print_json
from storage import migrate
from storage.engine import mask_url


def register(commands: Any) -> None:
    parser = commands.add_parser("db", help="database schema migrations")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    upgrade = actions.add_parser("upgrade", help="migrate the schema to the newest revision")
    upgrade.add_argument("revision", nargs="?", default="head", help="target revision, or head")
    upgrade.set_defaults(handler=_upgrade)

    current = actions.add_parser("current", help="show the schema revision of the database")
    current.add_argument("--json", action="store_true", help="machine-readable output")
    current.set_defaults(handler=_current)

    downgrade = actions.add_parser("downgrade", help="migrate the schema down to REVISION")
    downgrade.add_argument("revision", help="target revision, or 'base' to drop every table")
    downgrade.set_defaults(handler=_downgrade)


def _upgrade(args: argparse.Namespace) -> int:
    _check_revision(args.revision, "head", "upgrade")
    engine = open_engine(require_schema=False)
    before = migrate.current_revision(engine)
    _migrate(migrate.upgrade, engine, args.revision, "upgrade")
    after = migrate.current_revision(engine)
    if before == after:
        print(f"{mask_url(engine.url)}: already at {after}; nothing to do.")
    else:
        print(f"{mask_url(engine.url)}: upgraded {before or 'empty'} -> {after}.")
    return 0


def _current(args: argparse.Namespace) -> int:
    engine = open_engine(require_schema=False)
    current = migrate.current_revision(engine)
    head = migrate.head_revision()
    if args.json:
        print_json(
            {
                "url": mask_url(engine.url),
                "current": current,
                "head": head,
                "up_to_date": current == head,
            }
        )
    else:
        state = "up to date" if current == head else f"behind head {head}"
        print(f"{mask_url(engine.url)}: {current or 'empty (no schema)'} ({state})")
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    if args.revision == "head":
        raise CommandError("downgrade needs a revision below the current one, or 'base'.")
    _check_revision(args.revision, "base", "downgrade")
    engine = open_engine(require_schema=False)
    before = migrate.current_revision(engine)
    _migrate(migrate.downgrade, engine, args.revision, "downgrade")
    after = migrate.current_revision(engine)
    print(f"{mask_url(engine.url)}: downgraded {before or 'empty'} -> {after or 'empty'}.")
    return 0


def _check_revision(revision: str, alias: str, verb: str) -> None:
    """Refuse a revision this code does not ship, naming the ones it does."""
    known = migrate.revisions()
    if revision != alias and revision not in known:
        shown = revision if len(revision) <= 40 else revision[:37] + "..."
        raise CommandError(
            f"cannot {verb} to {shown!r}: the revisions are {', '.join(known)} (or {alias})."
        )


def _migrate(step: Callable[[Engine, str], None], engine: Engine, revision: str, verb: str) -> None:
    try:
        step(engine, revision)
    except AlembicError as exc:
        # A known revision in the wrong direction (upgrading to an older one, say).
        current = migrate.current_revision(engine) or "empty"
        raise CommandError(
            f"cannot {verb} from {current} to {revision}: {' '.join(str(exc).split())}"
        ) from None
