"""``steward tools list``: the tools, policy facts and sandbox fixtures the installed plugins
offer, each with the plugin it came from; exit 1 when a plugin failed to load."""

from __future__ import annotations

import argparse
from typing import Any

from agent.plugins import GROUP, PLUGINS_VARIABLE, catalogue
from console.cli.common import print_json

EXIT_OK = 0
EXIT_PROBLEM = 1


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "tools", help="the tools and facts installed plugins offer to agent versions"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="every plugin, tool (origin, schemas, side effect) and fact"
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    found = catalogue()
    if args.json:
        print_json(found.as_dict())
        return EXIT_PROBLEM if found.failed else EXIT_OK
    if not found.plugins:
        print(
            f"no plugin is installed: a package offers tools through the {GROUP!r} entry point "
            "group (see the README)."
        )
    for plugin in found.plugins:
        state = (
            "loaded"
            if plugin.loaded
            else f"FAILED: {plugin.error}"
            if plugin.error
            else f"not enabled ({PLUGINS_VARIABLE})"
        )
        print(f"plugin {plugin.name}  {plugin.target}  from {plugin.distribution}: {state}")
    if found.tools:
        print()
        print("tools:")
    for tool in found.tools:
        properties = ", ".join(tool["args_schema"].get("properties", {})) or "no arguments"
        sources = ", ".join(tool["data_sources"]) or "no data source"
        idempotent = "idempotent" if tool["idempotent"] else "not idempotent"
        undo = f"; undone by {tool['compensating_tool']}" if tool["compensating_tool"] else ""
        print(
            f"  {tool['name']}  [{tool['side_effect']}, {idempotent}{undo}]  ({tool['origin']})\n"
            f"      args: {properties}; data: {sources}"
        )
    if found.facts:
        print()
        print("facts:")
    for fact in found.facts:
        print(f"  {fact['name']}  reads {', '.join(fact['inputs'])}  ({fact['origin']})")
    if found.fixtures:
        print()
        print(
            "sandbox fixtures: " + ", ".join(f"{f['name']} ({f['origin']})" for f in found.fixtures)
        )
    return EXIT_PROBLEM if found.failed else EXIT_OK
