"""The ``steward`` command line: one sub-command module per area, sharing error handling.

Every command exits 0 on success, 1 when it ran and found a problem (a broken audit chain),
and 2 on a usage, permission or configuration error, printed as one line without a traceback.
Arguments are checked by the shared types of ``console.cli.args`` before any command runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from agent.errors import ServiceError
from agent.settings import check_settings
from agent.telemetry.logs import configure_logging
from console.cli import (
    audit,
    brake,
    db,
    demo,
    evals,
    gateway,
    mcp,
    operations,
    policy,
    replay,
    tools,
    undo,
    users,
    versions,
)
from console.cli.args import Parser, argv_problem
from console.cli.common import CommandError
from storage.errors import StorageError

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    evals.register(commands)
    policy.register(commands)
    brake.register(commands)
    tools.register(commands)
    mcp.register(commands)
    gateway.register(commands)
    undo.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    problem = argv_problem(arguments)
    if problem is not None:
        print(f"steward: {problem}", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser().parse_args(arguments)
    try:
        # Text or JSON lines (STEWARD_LOG_FORMAT), carrying run, task and trace ids.
        configure_logging(logging.INFO if args.verbose else logging.WARNING)
        # Every command opens the database: a bad setting stops it here, before any work.
        check_settings()
        code: int = args.handler(args)
    except (StorageError, CommandError, ServiceError) as exc:
        _say(str(exc))
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        # Not one of the failures the services name (those are ServiceErrors): keep the
        # details for -v, and still answer in one line.
        log.info("the database refused the command", exc_info=True)
        _say(
            f"the database refused the command ({type(exc).__name__}); "
            "run it again with -v to see why."
        )
        return EXIT_USAGE
    except BrokenPipeError:
        # Whoever read the output stopped (``steward runs list | head``): nothing to report.
        # Point stdout at nothing so that flushing it at exit does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return 130
    return code


def _say(message: str) -> None:
    """One line on standard error, whatever line breaks the message carries."""
    print(f"steward: {' '.join(message.split())}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover - ``python -m console.cli``
    sys.exit(main())
