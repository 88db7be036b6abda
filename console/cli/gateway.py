"""``steward gateway AGENT``: serve an agent's tools to MCP clients, every call governed.

``steward gateway token create AGENT --user NAME`` (admins) prints a client's bearer token once;
``steward gateway token revoke ID`` stops it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.gateway.server import MCP_PATH, serve
from agent.gateway.tokens import create_token, revoke_token
from console.cli.common import CommandError, acting_user, add_actor_argument, open_platform

EXIT_OK = 0


def register(commands: Any) -> None:
    gateway = commands.add_parser(
        "gateway",
        help="serve an agent's tools over MCP to agents built elsewhere (every call governed)",
        description=(
            "steward gateway AGENT [--host H] [--port P] serves AGENT's active version over "
            "streamable HTTP at /mcp; steward gateway token create AGENT --user NAME prints a "
            "client token (admins); steward gateway token revoke ID revokes one."
        ),
    )
    gateway.add_argument("words", nargs="+", metavar="AGENT | token create AGENT | token revoke ID")
    gateway.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
    gateway.add_argument("--port", type=int, default=8765, help="port to listen on (8765)")
    gateway.add_argument("--user", help="token create: the user the client acts as")
    gateway.add_argument("--label", default="", help="token create: what the client is")
    add_actor_argument(gateway)
    gateway.set_defaults(handler=_gateway)


def _gateway(args: argparse.Namespace) -> int:
    words: list[str] = args.words
    if words[0] == "token":
        return _token(args, words[1:])
    if len(words) != 1:
        raise CommandError("name one agent: steward gateway AGENT")
    if not 0 < args.port < 65536:
        raise CommandError(f"--port {args.port} is not a TCP port")
    platform = open_platform()
    actor = acting_user(args, platform)
    print(
        f"serving {words[0]} at http://{args.host}:{args.port}{MCP_PATH} "
        "(clients send Authorization: Bearer <token>); Ctrl-C stops",
        file=sys.stderr,
    )
    try:
        serve(platform, actor, words[0], host=args.host, port=args.port)
    finally:
        platform.close()
    return EXIT_OK


def _token(args: argparse.Namespace, words: list[str]) -> int:
    platform = open_platform()
    actor = acting_user(args, platform)
    if len(words) == 2 and words[0] == "create":
        if not args.user:
            raise CommandError("name the user the client acts as: --user NAME")
        token = create_token(platform, actor, words[1], args.user, label=args.label)
        print(token)
        print(
            f"the token is shown once; give it to the client as 'Authorization: Bearer "
            f"<token>'. It acts as {args.user} on {words[1]}.",
            file=sys.stderr,
        )
        return EXIT_OK
    if len(words) == 2 and words[0] == "revoke":
        try:
            token_id = int(words[1])
        except ValueError:
            raise CommandError(f"{words[1]!r} is not a token id") from None
        revoke_token(platform, actor, token_id)
        print(f"revoked gateway token {token_id}.")
        return EXIT_OK
    raise CommandError("use: steward gateway token create AGENT --user NAME | token revoke ID")
