"""``steward agents create | list | release`` and ``steward versions create | list | show | diff
| gate | activate | rollback | history`` (and the canary actions of ``console.cli.canary``):
agents and their versions as code, and the activation gate."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from enum import Enum
from typing import Any

from agent.evals.gate import GateVerdict, gate_verdict
from agent.versions import (
    AgentInfo,
    DeploymentInfo,
    ReleaseSettings,
    VersionDiff,
    VersionInfo,
    activate_version,
    create_agent,
    create_version,
    deployment_history,
    diff_versions,
    list_agents,
    list_versions,
    release_settings,
    rollback,
    set_release_settings,
    show_version,
)
from console.cli import args as argtypes
from console.cli import canary
from console.cli.common import (
    acting_user,
    add_actor_argument,
    add_paging,
    open_platform,
    print_json,
    print_page,
    read_source,
)
from storage.enums import DeploymentAction


def register(commands: Any) -> None:
    _register_agents(commands)
    _register_versions(commands)


def _register_agents(commands: Any) -> None:
    parser = commands.add_parser("agents", help="the agents Steward governs")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="register an agent (engineers and admins)")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--domain", default="")
    _common(create)
    create.set_defaults(handler=_agents_create)

    listing = actions.add_parser("list", help="list agents and their active versions")
    _listing(listing, "agents")
    listing.set_defaults(handler=_agents_list)

    release = actions.add_parser(
        "release",
        help="show or set who may override the activation gate (setting it: admins)",
    )
    release.add_argument("agent")
    release.add_argument(
        "--override-roles",
        metavar="ROLES",
        default=None,
        help="comma-separated roles that may activate a version the gate refuses, with a "
        "reason; '' names none (leave it out to show the settings)",
    )
    canary.add_guard_argument(release)
    _common(release)
    release.set_defaults(handler=_agents_release)


def _register_versions(commands: Any) -> None:
    parser = commands.add_parser("versions", help="agent versions as code")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="store a version from a YAML file (engineers)")
    create.add_argument("agent")
    create.add_argument("file", help="the version YAML, or - for standard input")
    create.add_argument("--note", default="", help="what changed and why")
    _common(create)
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", help="list an agent's versions, newest first")
    listing.add_argument("agent")
    _listing(listing, "versions")
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="show one version and its YAML")
    show.add_argument("agent")
    show.add_argument("number", metavar="N", type=argtypes.record_id("a version number"))
    _common(show)
    show.set_defaults(handler=_show)

    diff = actions.add_parser("diff", help="what changed from version A to version B")
    diff.add_argument("agent")
    diff.add_argument("a", metavar="A", type=argtypes.record_id("a version number"))
    diff.add_argument("b", metavar="B", type=argtypes.record_id("a version number"))
    _common(diff)
    diff.set_defaults(handler=_diff)

    gate = actions.add_parser(
        "gate", help="whether the activation gate lets version N through (exit 1 if not)"
    )
    gate.add_argument("agent")
    gate.add_argument("number", metavar="N", type=argtypes.record_id("a version number"))
    _common(gate)
    gate.set_defaults(handler=_gate)

    activate = actions.add_parser(
        "activate", help="make version N the active one, if the gate lets it (engineers)"
    )
    activate.add_argument("agent")
    activate.add_argument("number", metavar="N", type=argtypes.record_id("a version number"))
    activate.add_argument("--reason", required=True, help="why the active version changes")
    activate.add_argument(
        "--override",
        action="store_true",
        help="activate even if the gate refuses (a role the agent's release settings name; "
        "audited with the reason)",
    )
    _common(activate)
    activate.set_defaults(handler=_activate)

    back = actions.add_parser("rollback", help="return to the previously active version")
    back.add_argument("agent")
    back.add_argument("--reason", required=True, help="why the active version changes")
    _common(back)
    back.set_defaults(handler=_rollback)

    history = actions.add_parser("history", help="every activation and rollback, newest first")
    history.add_argument("agent")
    _listing(history, "deployments")
    history.set_defaults(handler=_history)

    canary.register_actions(actions)


def _listing(parser: argparse.ArgumentParser, noun: str) -> None:
    add_actor_argument(parser)
    add_paging(parser, noun)


def _common(parser: argparse.ArgumentParser) -> None:
    add_actor_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _agents_create(args: argparse.Namespace) -> int:
    platform = open_platform()
    agent = create_agent(
        platform,
        acting_user(args, platform),
        args.name,
        description=args.description,
        domain=args.domain,
    )
    if args.json:
        print_json(asdict(agent))
    else:
        print(
            f"created agent {agent.name}; add a version: steward versions create {agent.name} FILE"
        )
    return 0


def _agents_list(args: argparse.Namespace) -> int:
    platform = open_platform()
    agents = list_agents(
        platform, acting_user(args, platform), offset=args.offset, limit=args.limit
    )
    print_page(agents, args, _agent_line, empty="no agents yet: steward agents create NAME")
    return 0


def _agent_line(agent: AgentInfo) -> str:
    active = f"v{agent.active_number}" if agent.active_number else "no active version"
    return f"{agent.name}  {active}  ({agent.version_count} versions)  {agent.description}"


def _agents_release(args: argparse.Namespace) -> int:
    platform = open_platform()
    actor = acting_user(args, platform)
    if args.override_roles is None:
        settings = release_settings(platform, actor, args.agent)
    else:
        settings = set_release_settings(
            platform, actor, args.agent, override_roles=args.override_roles.split(",")
        )
    guard = canary.guard_for(platform, actor, args)
    if args.json:
        print_json({**settings.as_dict(), "canary_guard": guard.as_dict()})
    else:
        print(_release_line(settings))
        sys.stdout.write(canary.render_guard(args.agent, guard))
    return 0


def _release_line(settings: ReleaseSettings) -> str:
    if not settings.override_roles:
        return f"{settings.agent}: no one may override the activation gate."
    roles = ", ".join(role.value for role in settings.override_roles)
    return f"{settings.agent}: the activation gate may be overridden, with a reason, by: {roles}."


def _create(args: argparse.Namespace) -> int:
    text = read_source(args.file)
    platform = open_platform()
    version = create_version(
        platform, acting_user(args, platform), args.agent, text, note=args.note
    )
    if args.json:
        print_json(asdict(version))
    else:
        print(
            f"created {version.agent} version {version.number} (hash {version.short_hash}); "
            f"activate it with: steward versions activate {version.agent} {version.number} "
            "--reason ..."
        )
    return 0


def _list(args: argparse.Namespace) -> int:
    platform = open_platform()
    versions = list_versions(
        platform, acting_user(args, platform), args.agent, offset=args.offset, limit=args.limit
    )
    empty = f"{args.agent} has no versions yet: steward versions create {args.agent} FILE"
    print_page(versions, args, _version_line, empty=empty)
    return 0


def _show(args: argparse.Namespace) -> int:
    platform = open_platform()
    detail = show_version(platform, acting_user(args, platform), args.agent, args.number)
    if args.json:
        print_json(asdict(detail))
        return 0
    print(_version_line(detail.info))
    print(f"content hash {detail.info.content_hash}")
    print(f"policy hash  {detail.info.policy_hash}")
    print()
    sys.stdout.write(
        detail.source_yaml if detail.source_yaml.endswith("\n") else detail.source_yaml + "\n"
    )
    return 0


def _diff(args: argparse.Namespace) -> int:
    platform = open_platform()
    diff = diff_versions(platform, acting_user(args, platform), args.agent, args.a, args.b)
    if args.json:
        print_json(diff.to_dict())
    else:
        sys.stdout.write(render_diff(diff))
    return 0


def _gate(args: argparse.Namespace) -> int:
    platform = open_platform()
    verdict = gate_verdict(platform, acting_user(args, platform), args.agent, args.number)
    if args.json:
        print_json(verdict.as_dict())
    else:
        sys.stdout.write(render_verdict(verdict))
    return 0 if verdict.allowed else 1


def render_verdict(verdict: GateVerdict) -> str:
    """The verdict as text for a terminal: the answer, then each suite's evaluation and why."""
    answer = "may be activated" if verdict.allowed else "may NOT be activated"
    lines = [f"{verdict.agent} v{verdict.version} (hash {verdict.content_hash[:12]}): {answer}."]
    lines.extend(f"  {reason}" for reason in verdict.reasons)
    for suite in verdict.suites:
        if suite.evaluation_id is None:
            continue
        rate = f"{suite.pass_rate:.0%}" if suite.pass_rate is not None else "-"
        lines.append(
            f"  suite {suite.suite}: evaluation #{suite.evaluation_id} "
            f"{suite.evaluation_status}, pass rate {rate} (threshold {suite.threshold:.0%})"
        )
    if verdict.failing_cases:
        lines.append(f"  failing cases: {', '.join(verdict.failing_cases)}")
    return "\n".join(lines) + "\n"


def _activate(args: argparse.Namespace) -> int:
    platform = open_platform()
    deployment = activate_version(
        platform,
        acting_user(args, platform),
        args.agent,
        args.number,
        reason=args.reason,
        override=args.override,
    )
    return _deployed(args, deployment)


def _rollback(args: argparse.Namespace) -> int:
    platform = open_platform()
    deployment = rollback(platform, acting_user(args, platform), args.agent, reason=args.reason)
    return _deployed(args, deployment)


def _history(args: argparse.Namespace) -> int:
    platform = open_platform()
    history = deployment_history(
        platform, acting_user(args, platform), args.agent, offset=args.offset, limit=args.limit
    )
    print_page(history, args, _deployment_line, empty=f"{args.agent} has never been activated.")
    return 0


def _deployment_line(item: DeploymentInfo) -> str:
    before = f"v{item.from_number}" if item.from_number else "none"
    return (
        f"{item.created_at:%Y-%m-%d %H:%M:%S}  {item.action.value:<17}  {before} -> "
        f"v{item.to_number}  by {item.actor}: {item.reason}"
    )


def _deployed(args: argparse.Namespace, deployment: DeploymentInfo) -> int:
    if args.json:
        print_json(asdict(deployment))
    else:
        before = f"v{deployment.from_number}" if deployment.from_number else "none"
        verb = {
            DeploymentAction.ROLLBACK: "rolled back",
            DeploymentAction.OVERRIDE_ACTIVATE: "activated, overriding the gate,",
        }.get(deployment.action, "activated")
        print(f"{deployment.agent}: {verb} {before} -> v{deployment.to_number}.")
    return 0


def _version_line(version: VersionInfo) -> str:
    marker = "*" if version.is_active else " "
    note = f"  {version.note}" if version.note else ""
    return (
        f"{marker} v{version.number}  {version.short_hash}  {version.created_by}  "
        f"{version.created_at:%Y-%m-%d %H:%M:%S}{note}"
    )


def render_diff(diff: VersionDiff) -> str:
    """The diff as text for a terminal: a summary by section, then the YAML diff."""
    lines = [f"{diff.agent}: v{diff.a} -> v{diff.b}"]
    if diff.identical:
        lines.append("  no change in behaviour.")
    for title, changes in (("planner", diff.planner), ("policy", diff.policy)):
        lines.extend(
            f"  {title}.{c.field}: {_shown(c.before)} -> {_shown(c.after)}" for c in changes
        )
    lines.extend(f"  rule added: {rule}" for rule in diff.rules_added)
    lines.extend(f"  rule removed: {rule}" for rule in diff.rules_removed)
    for rule in diff.rules_changed:
        fields = ", ".join(
            f"{c.field} {_shown(c.before)} -> {_shown(c.after)}" for c in rule.changes
        )
        lines.append(f"  rule changed: {rule.rule_id}: {fields}")
    lines.extend(f"  tool added: {tool}" for tool in diff.tools_added)
    lines.extend(f"  tool removed: {tool}" for tool in diff.tools_removed)
    lines.extend(f"  data source added: {name}" for name in diff.data_sources_added)
    lines.extend(f"  data source removed: {name}" for name in diff.data_sources_removed)
    lines.extend(
        f"  budgets.{c.field}: {_shown(c.before)} -> {_shown(c.after)}" for c in diff.budgets
    )
    lines.extend(f"  {c.field} changed" for c in diff.other)
    text = "\n".join(lines) + "\n"
    if diff.text:
        text += "\n" + diff.text + ("" if diff.text.endswith("\n") else "\n")
    return text


def _shown(value: Any) -> str:
    return repr(value.value if isinstance(value, Enum) else value)
