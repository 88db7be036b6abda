"""``steward policy replay``: what a candidate policy would have decided on an agent's history.

The candidate is a stored version's number or a version YAML file; nothing is called, only
stored decisions are read. The report is saved (and attached to the version when the candidate
is one); ``steward policy replays AGENT`` lists saved ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.release.replay import list_replays, replay_policy
from agent.release.report import Flip, ReplayReport
from agent.release.shadow import shadow_report
from agent.release.suggest import DEFAULT_MIN_DECISIONS, DEFAULT_MIN_SHARE, policy_suggestions
from console.cli import args as argtypes
from console.cli.common import (
    CommandError,
    acting_user,
    add_actor_argument,
    open_platform,
    print_json,
    read_source,
)

EXIT_OK = 0


def register(commands: Any) -> None:
    policy = commands.add_parser("policy", help="replay a candidate policy on recorded decisions")
    actions = policy.add_subparsers(dest="action", required=True, metavar="ACTION")

    replay = actions.add_parser(
        "replay", help="what a candidate would have decided on the agent's recorded decisions"
    )
    replay.add_argument("agent", metavar="AGENT")
    replay.add_argument(
        "--candidate",
        required=True,
        metavar="VERSION|FILE.yaml",
        help="a version number of the agent, or a version YAML file",
    )
    replay.add_argument(
        "--since",
        type=argtypes.span,
        default=argtypes.span("30d"),
        help="how far back to replay: 30d (default), 12h, 2w ...",
    )
    add_actor_argument(replay)
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    replay.set_defaults(handler=_replay)

    shadow = actions.add_parser(
        "shadow", help="what the agent's shadow rules would have changed on live traffic"
    )
    shadow.add_argument("agent", metavar="AGENT")
    shadow.add_argument(
        "--version", type=argtypes.record_id("a version number"), help="only this version's"
    )
    shadow.add_argument(
        "--since",
        type=argtypes.span,
        default=argtypes.span("7d"),
        help="how far back: 7d (default), 12h, 2w ...",
    )
    add_actor_argument(shadow)
    shadow.add_argument("--json", action="store_true", help="print the report as JSON")
    shadow.set_defaults(handler=_shadow)

    suggest = actions.add_parser(
        "suggest",
        help="escalation rules people nearly always approve, with a bound checked by replay",
    )
    suggest.add_argument("agent", metavar="AGENT")
    suggest.add_argument(
        "--since", type=argtypes.span, default=argtypes.span("30d"), help="30d (default) ..."
    )
    suggest.add_argument(
        "--min-decisions",
        type=argtypes.whole_number(1, 100_000, "decisions"),
        default=DEFAULT_MIN_DECISIONS,
        help=f"at least this many decided reviews of the rule (default {DEFAULT_MIN_DECISIONS})",
    )
    suggest.add_argument(
        "--min-share",
        type=argtypes.positive_number(0.5, 1.0, "a share of approvals"),
        default=DEFAULT_MIN_SHARE,
        help=f"approved at least this share of the time (default {DEFAULT_MIN_SHARE})",
    )
    suggest.add_argument("--out", help="write the first proposal's version YAML to this file")
    add_actor_argument(suggest)
    suggest.add_argument("--json", action="store_true", help="print as JSON")
    suggest.set_defaults(handler=_suggest)

    saved = actions.add_parser("replays", help="saved replays of an agent, newest first")
    saved.add_argument("agent", metavar="AGENT")
    saved.add_argument(
        "--version", type=argtypes.record_id("a version number"), help="only this candidate"
    )
    add_actor_argument(saved)
    saved.add_argument("--json", action="store_true", help="print as JSON")
    saved.set_defaults(handler=_replays)


def _replay(args: argparse.Namespace) -> int:
    platform = open_platform()
    actor = acting_user(args, platform)
    candidate = str(args.candidate).strip()
    if candidate.isdigit():
        report = replay_policy(
            platform, actor, args.agent, candidate_version=int(candidate), since=args.since
        )
    else:
        report = replay_policy(
            platform, actor, args.agent, candidate_yaml=_read(candidate), since=args.since
        )
    if args.json:
        print_json(report.as_dict())
    else:
        print(describe(report))
    return EXIT_OK


def _shadow(args: argparse.Namespace) -> int:
    platform = open_platform()
    report = shadow_report(
        platform, acting_user(args, platform), args.agent, version=args.version, since=args.since
    )
    if args.json:
        print_json(report.as_dict())
        return EXIT_OK
    scope = f"v{report.version}" if report.version is not None else "every version"
    print(
        f"Shadow rules of {report.agent} ({scope}), {report.since:%Y-%m-%d %H:%M} to "
        f"{report.until:%Y-%m-%d %H:%M} UTC: {report.decisions} decisions with shadow rules, "
        f"{report.unchanged} unchanged, {report.flipped} would change."
    )
    for f in report.flips:
        print(f"  {flip_line(f)}")
    for rule, count in sorted(report.rule_matches.items()):
        print(f"  shadow rule {rule} matched {count} time(s)")
    return EXIT_OK


def _suggest(args: argparse.Namespace) -> int:
    platform = open_platform()
    suggestions = policy_suggestions(
        platform,
        acting_user(args, platform),
        args.agent,
        since=args.since,
        min_decisions=args.min_decisions,
        min_share=args.min_share,
    )
    proposed = next((s for s in suggestions if s.candidate_yaml), None)
    if args.out and proposed is not None and proposed.candidate_yaml is not None:
        try:
            Path(args.out).write_text(proposed.candidate_yaml, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {args.out}: {exc.strerror}") from exc
    if args.json:
        print_json([s.as_dict() for s in suggestions])
        return EXIT_OK
    if not suggestions:
        print(f"no escalation rule of {args.agent} is approved that often; nothing to suggest.")
    for s in suggestions:
        print(
            f"{s.rule_id} ({s.tool}): approved {s.approved} of {s.decisions} "
            f"({s.approval_share:.0%})."
        )
        if s.proposal:
            print(
                f"  suggest: {s.proposal}; saves {s.reviews_saved} reviews "
                f"({s.reviews_saved_per_day} a day), allows no rejected call."
            )
        elif s.rejections_allowed:
            print(f"  a higher bound would have allowed {s.rejections_allowed} rejected call(s).")
        else:
            print("  no numeric bound to move: a change here is for a person to write.")
    if args.out and proposed is not None:
        print(f"wrote the proposal as a version to {args.out}: review it, then versions create.")
    return EXIT_OK


def _replays(args: argparse.Namespace) -> int:
    platform = open_platform()
    reports = list_replays(platform, acting_user(args, platform), args.agent, version=args.version)
    if args.json:
        print_json([r.as_dict() for r in reports])
        return EXIT_OK
    if not reports:
        print(f"no saved replays of {args.agent}; run `steward policy replay {args.agent} ...`.")
    for r in reports:
        created = r.created_at.strftime("%Y-%m-%d %H:%M") if r.created_at else "?"
        print(
            f"#{r.id}  {created}  {r.candidate}: {r.replayed} of {r.decisions} decisions "
            f"replayed, {r.flipped} flip(s), {len(r.contradictions)} contradiction(s)  "
            f"by {r.created_by}"
        )
    return EXIT_OK


def _read(path_text: str) -> str:
    if not Path(path_text).exists():
        raise CommandError(
            f"--candidate {path_text!r} is neither a version number nor an existing file."
        )
    return read_source(path_text)


def flip_line(f: Flip) -> str:
    """One group of flips: from -> to, rule, tool, version: count and example runs."""
    return (
        f"{f.from_effect} -> {f.to_effect}  {f.rule_id or '-'}  {f.tool}  v{f.version}: "
        f"{f.count}  runs {', '.join(map(str, f.runs))}"
    )


def describe(report: ReplayReport) -> str:
    """The report in words, as the CLI prints it."""
    lines = [
        f"Replay #{report.id} of {report.candidate} on {report.agent}, "
        f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC",
        f"  {report.decisions} recorded decisions: {report.replayed} replayed, "
        f"{report.unchanged} unchanged, {report.flipped} would flip.",
    ]
    if report.flips:
        lines.append("  Flips (from -> to, candidate's rule, tool, version: count, example runs):")
        lines += [f"    {flip_line(f)}" for f in report.flips]
    for reason, count in sorted(report.undecidable.items()):
        lines.append(f"  Not replayed ({count}): {reason}.")
    queue = report.queue
    lines.append(
        f"  Escalations per day: {queue.get('escalations_per_day')} today, "
        f"{queue.get('projected_escalations_per_day')} under the candidate (reviews saved a "
        f"day: {queue.get('reviews_saved_per_day')}); people decided "
        f"{queue.get('decisions_per_day')} a day (median wait "
        f"{queue.get('median_minutes_to_decide')} min)."
    )
    if report.contradictions:
        lines.append("  Past human decisions it contradicts:")
        lines += [
            f"    run {c.run_id} review {c.review_id}: {c.person} {c.decided} {c.tool}; "
            f"the candidate would {c.candidate} ({c.rule_id or 'default'})"
            for c in report.contradictions
        ]
    if report.executed_now_denied:
        lines.append("  Executed calls it would now deny:")
        lines += [
            f"    run {c['run_id']} {c['tool']} ({c['rule_id'] or 'default'})"
            for c in report.executed_now_denied
        ]
    return "\n".join(lines)
