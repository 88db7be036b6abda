"""``steward pause AGENT`` / ``steward resume AGENT``: the emergency brake, with a reason.

``steward paused`` lists the agents that are paused.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.release.brake import PauseState, pause_agent, paused_agents, resume_agent
from console.cli.common import acting_user, add_actor_argument, open_platform, print_json

EXIT_OK = 0


def register(commands: Any) -> None:
    pause = commands.add_parser(
        "pause", help="stop an agent: no run starts or goes on until it is resumed"
    )
    pause.add_argument("agent", metavar="AGENT")
    pause.add_argument("--reason", required=True, help="why (audited)")
    add_actor_argument(pause)
    pause.add_argument("--json", action="store_true", help="print the result as JSON")
    pause.set_defaults(handler=_pause)

    resume = commands.add_parser("resume", help="let a paused agent's work go on")
    resume.add_argument("agent", metavar="AGENT")
    resume.add_argument("--reason", required=True, help="why (audited)")
    add_actor_argument(resume)
    resume.add_argument("--json", action="store_true", help="print the result as JSON")
    resume.set_defaults(handler=_resume)

    listed = commands.add_parser("paused", help="the agents that are paused")
    add_actor_argument(listed)
    listed.add_argument("--json", action="store_true", help="print as JSON")
    listed.set_defaults(handler=_paused)


def _pause(args: argparse.Namespace) -> int:
    platform = open_platform()
    state = pause_agent(platform, acting_user(args, platform), args.agent, reason=args.reason)
    _show(args, state, f"paused {state.agent}: its queued and waiting work stays where it is.")
    return EXIT_OK


def _resume(args: argparse.Namespace) -> int:
    platform = open_platform()
    state = resume_agent(platform, acting_user(args, platform), args.agent, reason=args.reason)
    _show(args, state, f"resumed {state.agent}: workers take its work again.")
    return EXIT_OK


def _paused(args: argparse.Namespace) -> int:
    platform = open_platform()
    states = paused_agents(platform, acting_user(args, platform))
    if args.json:
        print_json([s.as_dict() for s in states])
        return EXIT_OK
    if not states:
        print("no agent is paused.")
    for s in states:
        when = f"{s.paused_at:%Y-%m-%d %H:%M} UTC" if s.paused_at else "?"
        print(f"{s.agent}: paused by {s.paused_by} since {when}: {s.reason}")
    return EXIT_OK


def _show(args: argparse.Namespace, state: PauseState, words: str) -> None:
    if args.json:
        print_json(state.as_dict())
    else:
        print(words)
