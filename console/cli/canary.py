"""``steward versions canary | canary-status | canaries | promote | abort``: canary releases, a
share of new tasks on a candidate version under a guard, and the people's ways to end them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.actors import Actor
from agent.platform import Platform
from agent.release.canary import (
    CanaryInfo,
    abort_canary,
    canary_guard,
    canary_status,
    list_canaries,
    promote_canary,
    set_canary_guard,
    start_canary,
)
from agent.release.guard import CanaryGuard
from console.cli import args as argtypes
from console.cli.common import acting_user, add_actor_argument, open_platform, print_json


def register_actions(actions: Any) -> None:
    """Add the canary actions to ``steward versions``."""
    start = actions.add_parser(
        "canary",
        help="route a share of new tasks to version N, guarded (engineers; through the gate)",
    )
    start.add_argument("agent")
    start.add_argument("number", metavar="N", type=argtypes.record_id("a version number"))
    start.add_argument(
        "--share",
        type=int,
        default=10,
        help="the percentage of new tasks routed to version N, 1 to 50 (default 10)",
    )
    start.add_argument("--reason", required=True, help="why this version goes out as a canary")
    start.add_argument(
        "--override",
        action="store_true",
        help="start even if the gate refuses (a role the agent's release settings name)",
    )
    _common(start)
    start.set_defaults(handler=_start)

    status = actions.add_parser(
        "canary-status",
        help="the running (or latest) canary: candidate against baseline, figure by figure",
    )
    status.add_argument("agent")
    _common(status)
    status.set_defaults(handler=_status)

    history = actions.add_parser("canaries", help="canary releases, newest first")
    history.add_argument("agent", nargs="?", help="one agent (default: every agent)")
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    _common(history)
    history.set_defaults(handler=_history)

    promote = actions.add_parser(
        "promote", help="end the canary by activating its candidate (engineers; gated)"
    )
    promote.add_argument("agent")
    promote.add_argument("--reason", required=True, help="why the candidate goes to everyone")
    promote.add_argument(
        "--override",
        action="store_true",
        help="promote even if the gate refuses (a role the agent's release settings name)",
    )
    _common(promote)
    promote.set_defaults(handler=_promote)

    abort = actions.add_parser(
        "abort", help="end the canary: every new task on the active version (operators, engineers)"
    )
    abort.add_argument("agent")
    abort.add_argument("--reason", required=True, help="why the canary stops")
    _common(abort)
    abort.set_defaults(handler=_abort)


def add_guard_argument(parser: argparse.ArgumentParser) -> None:
    """``--canary-guard KEY=VALUE ...`` on ``steward agents release``."""
    parser.add_argument(
        "--canary-guard",
        metavar="KEY=VALUE",
        nargs="+",
        default=None,
        help="change the canary guard (admins): a figure's threshold "
        "(completion_rate, escalation_rate, deny_rate, tool_error_rate, override_rate, "
        "edit_rate: points as a share, e.g. 0.1; cost_per_task, latency_p95: relative, e.g. "
        "0.5), 'off' to stop guarding it, min_samples=N, alpha=P",
    )


def guard_for(platform: Platform, actor: Actor, args: argparse.Namespace) -> CanaryGuard:
    """The agent's canary guard, changed first when ``--canary-guard`` was given."""
    if args.canary_guard:
        return set_canary_guard(platform, actor, args.agent, args.canary_guard)
    return canary_guard(platform, actor, args.agent)


def render_guard(agent: str, guard: CanaryGuard) -> str:
    """The guard as one line per figure."""
    lines = [
        f"{agent}: a canary breaches when a figure is worse than the baseline by more than its "
        f"threshold, with p < {guard.alpha:g} (divided by the figures guarded) and at least "
        f"{guard.min_samples} observations per arm:"
    ]
    for key, value in guard.thresholds.items():
        lines.append(f"  {key:<16} {'off' if value is None else f'{value:g}'}")
    return "\n".join(lines) + "\n"


def _common(parser: argparse.ArgumentParser) -> None:
    add_actor_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _start(args: argparse.Namespace) -> int:
    platform = open_platform()
    canary = start_canary(
        platform,
        acting_user(args, platform),
        args.agent,
        args.number,
        share=args.share,
        reason=args.reason,
        override=args.override,
    )
    if args.json:
        print_json(canary.as_dict())
    else:
        print(
            f"{canary.agent}: canary #{canary.id} started: {canary.share}% of new tasks run on "
            f"v{canary.candidate}, the rest on v{canary.baseline}. Follow it with: "
            f"steward versions canary-status {canary.agent}"
        )
    return 0


def _status(args: argparse.Namespace) -> int:
    platform = open_platform()
    canary = canary_status(platform, acting_user(args, platform), args.agent)
    if args.json:
        print_json(canary.as_dict() if canary else None)
    elif canary is None:
        print(f"{args.agent} has had no canary release: steward versions canary {args.agent} N")
    else:
        sys.stdout.write(render_canary(canary))
    return 0


def _history(args: argparse.Namespace) -> int:
    platform = open_platform()
    canaries = list_canaries(platform, acting_user(args, platform), args.agent, limit=args.limit)
    if args.json:
        print_json([c.as_dict() for c in canaries])
    elif not canaries:
        print("no canary releases yet.")
    else:
        for canary in canaries:
            print(_line(canary))
    return 0


def _promote(args: argparse.Namespace) -> int:
    platform = open_platform()
    canary = promote_canary(
        platform,
        acting_user(args, platform),
        args.agent,
        reason=args.reason,
        override=args.override,
    )
    return _ended(args, canary, f"promoted: v{canary.candidate} is now the active version")


def _abort(args: argparse.Namespace) -> int:
    platform = open_platform()
    canary = abort_canary(platform, acting_user(args, platform), args.agent, reason=args.reason)
    return _ended(args, canary, f"aborted: every new task runs on v{canary.baseline}")


def _ended(args: argparse.Namespace, canary: CanaryInfo, what: str) -> int:
    if args.json:
        print_json(canary.as_dict())
    else:
        print(f"{canary.agent}: canary #{canary.id} {what}.")
    return 0


def _line(canary: CanaryInfo) -> str:
    ended = (
        f"; {canary.status.value} {canary.ended_at:%Y-%m-%d %H:%M} by {canary.ended_by}"
        if canary.ended_at
        else ""
    )
    return (
        f"#{canary.id}  {canary.agent}  v{canary.candidate} at {canary.share}% against "
        f"v{canary.baseline}  {canary.status.value}  started {canary.started_at:%Y-%m-%d %H:%M} "
        f"by {canary.started_by}{ended}"
    )


def render_canary(canary: CanaryInfo) -> str:
    """A canary and its comparison as text for a terminal."""
    comparison = canary.comparison
    lines = [_line(canary), f"  reason: {canary.reason}"]
    if canary.end_reason:
        lines.append(f"  ended: {canary.end_reason}")
    if comparison:
        lines.append(f"  guard: {comparison.get('summary', '')}")
        lines.append(
            f"  {'figure':<22} {'baseline':>10} {'candidate':>10} {'n base/cand':>12} "
            f"{'p':>8}  {'threshold':<11} state"
        )
        for figure in comparison.get("figures", []):
            p_value = figure["p_value"]
            lines.append(
                f"  {figure['label']:<22} {_value(figure['key'], figure['baseline']):>10} "
                f"{_value(figure['key'], figure['candidate']):>10} "
                f"{figure['baseline_n']:>5}/{figure['candidate_n']:<6} "
                f"{'-' if p_value is None else f'{p_value:.3g}':>8}  "
                f"{figure['threshold_text']:<11} {figure['state']}"
            )
    return "\n".join(lines) + "\n"


def _value(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key == "cost_per_task":
        return f"${value:.4f}"
    if key == "latency_p95":
        return f"{value:.0f} ms"
    return f"{value:.1%}"
