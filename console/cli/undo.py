"""``steward undo CALL --reason R``: start the compensation of an executed call.

The undo is a new task whose one call is the tool's compensating call; it goes through the same
gate (policy, review, ledger) as any call, so it may wait for a person's approval.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.undo import undo_call
from console.cli import args as argtypes
from console.cli.common import acting_user, add_actor_argument, open_platform, print_json

EXIT_OK = 0


def register(commands: Any) -> None:
    undo = commands.add_parser(
        "undo", help="undo an executed call with its tool's compensating call (as a new task)"
    )
    undo.add_argument(
        "call",
        metavar="CALL",
        type=argtypes.record_id("a call id (the ledger row, as `steward runs show` prints it)"),
    )
    undo.add_argument("--reason", required=True, help="why (audited, shown to the reviewer)")
    add_actor_argument(undo)
    undo.add_argument("--json", action="store_true", help="print the result as JSON")
    undo.set_defaults(handler=_undo)


def _undo(args: argparse.Namespace) -> int:
    platform = open_platform()
    started = undo_call(platform, acting_user(args, platform), args.call, reason=args.reason)
    if args.json:
        print_json(
            {
                "compensation_id": started.compensation_id,
                "task_id": started.task_id,
                "original_call_id": started.original_call_id,
                "tool": started.tool,
                "args": started.args,
            }
        )
    else:
        print(
            f"undo of call {started.original_call_id} queued as task {started.task_id}: "
            f"{started.tool} {started.args} goes through the policy (and a review if it "
            "asks for one) before it runs."
        )
    return EXIT_OK
