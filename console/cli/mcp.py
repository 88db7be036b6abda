"""``steward mcp inspect``: list an MCP server's tools and print the pins a version takes."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

import yaml

from agent.tools.mcp.inspect import describe_tool, inspect_server, server_definition, server_entry
from console.cli.common import CommandError, print_json

EXIT_OK = 0


def register(commands: Any) -> None:
    mcp = commands.add_parser("mcp", help="MCP servers: inspect one to pin its tools in a version")
    sub = mcp.add_subparsers(dest="mcp_command", required=True, metavar="SUBCOMMAND")
    inspect = sub.add_parser(
        "inspect", help="connect to an MCP server and list its tools with their pins"
    )
    target = inspect.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--command", help='the server\'s command line, started over stdio ("python server.py")'
    )
    target.add_argument("--url", help="the server's streamable HTTP endpoint")
    inspect.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="K=V",
        help="an HTTP header (repeatable); write secrets as ${env:NAME}",
    )
    inspect.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="an environment variable of the command (repeatable); secrets as ${env:NAME}",
    )
    inspect.add_argument("--name", default="server", help="the server's name in the version")
    inspect.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (30)")
    output = inspect.add_mutually_exclusive_group()
    output.add_argument(
        "--yaml", action="store_true", help="print the mcp_servers entry to paste in a version"
    )
    output.add_argument("--json", action="store_true", help="print the tools as JSON")
    inspect.set_defaults(handler=_inspect)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise CommandError(f"{option} {value!r} is not KEY=VALUE")
        pairs[key] = text
    return pairs


def _inspect(args: argparse.Namespace) -> int:
    try:
        command = shlex.split(args.command) if args.command else []
    except ValueError as exc:
        raise CommandError(f"--command cannot be split into words: {exc}") from None
    server = server_definition(
        name=args.name,
        command=command,
        url=args.url,
        headers=_pairs(args.header, "--header"),
        env=_pairs(args.env, "--env"),
    )
    listed = inspect_server(server, timeout_s=args.timeout)
    if args.json:
        print_json([describe_tool(tool) for tool in listed])
    elif args.yaml:
        entry = server_entry(server, listed)
        print("# Review each tool's side_effect, idempotent and data_sources before use.")
        print(yaml.safe_dump({"mcp_servers": [entry]}, sort_keys=False, allow_unicode=True), end="")
    else:
        print(f"{server.name}: {len(listed)} tools")
        for tool in listed:
            effect = tool.side_effect.value + (", idempotent" if tool.is_idempotent else "")
            print(f"  {tool.name:<28} {effect:<24} {tool.schema_hash}")
    return EXIT_OK
