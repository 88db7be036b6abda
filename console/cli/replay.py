"""``steward export-script RUN``: a run's proposals as a scripted version that replays it.

The YAML is written to ``--out`` (or printed); store it with ``steward versions create`` and
submit the run's task again to reproduce the run without the model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.planning.replay import export_replay
from console.cli import args as argtypes
from console.cli.common import (
    CommandError,
    acting_user,
    add_actor_argument,
    open_platform,
    print_json,
)

EXIT_OK = 0


def register(commands: Any) -> None:
    export = commands.add_parser(
        "export-script", help="write a version YAML that replays a run without its model"
    )
    export.add_argument("run", metavar="RUN", type=argtypes.record_id("a run id"))
    export.add_argument("--out", type=Path, help="the YAML file to write (default: stdout)")
    add_actor_argument(export)
    export.add_argument("--json", action="store_true", help="print a summary as JSON")
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    platform = open_platform()
    script = export_replay(platform, acting_user(args, platform), args.run)
    if args.out is not None:
        try:
            args.out.write_text(script.yaml_text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {args.out}: {exc.strerror}") from exc
    elif not args.json:
        sys.stdout.write(script.yaml_text)
    summary = {
        "run": script.run_id,
        "agent": script.agent,
        "version": script.version,
        "turns": script.turns,
        "task": script.task,
        "out": str(args.out) if args.out is not None else None,
    }
    if args.json:
        print_json(summary)
    elif args.out is not None:
        print(f"wrote the {script.turns}-turn replay of run {script.run_id} to {args.out}.")
    return EXIT_OK
