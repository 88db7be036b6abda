"""``steward demo seed | stream``: demo agents, accounts, records and live traffic."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from agent.users import actor_for
from console.cli import args as argtypes
from console.cli.common import (
    CommandError,
    acting_name,
    add_actor_argument,
    open_platform,
    print_json,
)


def register(commands: Any) -> None:
    parser = commands.add_parser("demo", help="demo agents, accounts and traffic")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    seed = actions.add_parser("seed", help="load demo accounts, agents, records and tasks")
    seed.add_argument("--no-tasks", action="store_true", help="do not queue the sample tasks")
    seed.add_argument(
        "--no-evaluations",
        action="store_true",
        help="store the suites but do not evaluate any version (faster; --no-tasks implies it)",
    )
    seed.add_argument(
        "--no-history",
        action="store_true",
        help="leave out the thirty days of backdated traffic (--no-tasks implies it)",
    )
    seed.add_argument("--json", action="store_true")
    seed.set_defaults(handler=_seed)
    live = actions.add_parser("stream", help="keep submitting sample tasks")
    live.add_argument(
        "--rate", type=argtypes.RATE, default=0.5, help="tasks per second (up to 1000)"
    )
    live.add_argument("--count", type=argtypes.COUNT, help="stop after this many")
    add_actor_argument(live)
    live.set_defaults(handler=_stream)


def _seed(args: argparse.Namespace) -> int:
    from agent.demo.seed import DEMO_USERS, seed_demo  # the agents' stack: only when seeding

    report = seed_demo(
        open_platform(),
        with_tasks=not args.no_tasks,
        with_evaluations=False if args.no_evaluations else None,
        with_history=not (args.no_history or args.no_tasks),
    )
    if args.json:
        print_json(
            {
                "users": report.users,
                "agents": report.agents,
                "records": report.records,
                "tasks": report.tasks,
                "history_runs": report.history,
                "versions": report.versions,
                "suites": report.suites,
                "evaluations": [str(e) for e in report.evaluations],
            }
        )
        return 0
    if not (report.users or report.agents or report.records):
        print("the demo is already seeded; nothing added.")
    else:
        print(
            f"seeded {len(report.users)} users, agents {', '.join(report.agents) or 'none'}, "
            f"{report.records} records, {report.tasks} tasks."
        )
    if report.history:
        print(
            f"history: {report.history} runs over the last 30 days "
            "(steward demo seed --no-history leaves it out)."
        )
    if report.versions or report.suites:
        print(
            f"release demo: versions {', '.join(report.versions) or 'none'}; suites "
            f"{', '.join(report.suites) or 'none'}."
        )
    for evaluation in report.evaluations:
        print(f"  evaluated {evaluation}")
    print("demo accounts (name / password / role):")
    for name, roles, password in DEMO_USERS:
        print(f"  {name:<6} {password:<20} {', '.join(roles)}")
    return 0


def _stream(args: argparse.Namespace) -> int:
    from agent.demo.seed import stream

    platform = open_platform()
    # The demo's traffic comes from its operator unless someone else is named.
    actor = actor_for(platform, acting_name(args) or "olga")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        submitted = stream(platform, actor, rate=args.rate, count=args.count, stop=stop)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(f"submitted {submitted} tasks.")
    return 0
