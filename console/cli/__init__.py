"""The ``steward`` command line: one sub-command module per area, sharing error handling.

Every command exits 0 on success, 1 when it ran and found a problem (a broken audit chain),
and 2 on a usage or configuration error, printed as one line without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from agent.errors import ServiceError
from agent.settings import check_settings
from console.cli import audit, db, demo, operations, replay, users, versions
from console.cli.common import CommandError
from storage.errors import StorageError

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steward", description="Steward: operations console for governed AI agents."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    db.register(commands)
    audit.register(commands)
    versions.register(commands)
    users.register(commands)
    operations.register(commands)
    demo.register(commands)
    replay.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        # Every command opens the database: a bad setting stops it here, before any work.
        check_settings()
        code: int = args.handler(args)
    except (StorageError, CommandError, ServiceError) as exc:
        print(f"steward: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover - ``python -m console.cli``
    sys.exit(main())
