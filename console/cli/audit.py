"""``steward audit list | verify``: read the tamper-evident audit log, check its hash chain."""

from __future__ import annotations

import argparse
import json
from typing import Any

from agent.reads.audit import AuditEntry, AuditFilter, audit_log, verify_audit_log
from console.cli import args as argtypes
from console.cli.common import (
    acting_user,
    add_actor_argument,
    add_paging,
    open_platform,
    print_json,
    print_page,
)


def register(commands: Any) -> None:
    parser = commands.add_parser("audit", help="the tamper-evident audit log")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="audit events, newest first (managers, admins)")
    listing.add_argument("--actor", help="only events by this user")
    listing.add_argument("--action", dest="event_action", help="only this action, e.g. user.add")
    listing.add_argument("--target-type", help="only events about this kind of thing")
    listing.add_argument("--target-id", help="only events about this one (with --target-type)")
    listing.add_argument("--since", type=argtypes.moment, help="ISO date or datetime (UTC)")
    listing.add_argument("--until", type=argtypes.moment, help="ISO date or datetime (UTC)")
    add_actor_argument(listing)
    add_paging(listing, "events")
    listing.set_defaults(handler=_list)

    verify = actions.add_parser("verify", help="check that no audit event was altered or removed")
    add_actor_argument(verify)
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(handler=_verify)


def _list(args: argparse.Namespace) -> int:
    platform = open_platform()
    flt = AuditFilter(
        actor=args.actor,
        action=args.event_action,
        target_type=args.target_type,
        target_id=args.target_id,
        since=args.since,
        until=args.until,
    )
    page = audit_log(
        platform, acting_user(args, platform), flt, offset=args.offset, limit=args.limit
    )
    print_page(page, args, _event_line, empty="no audit event matches.")
    return 0


def _event_line(event: AuditEntry) -> str:
    target = f"{event.target_type} {event.target_id}".strip()
    details = json.dumps(event.payload, sort_keys=True, ensure_ascii=False)
    when = f"{event.at:%Y-%m-%d %H:%M:%S}"
    return f"{event.seq:>7}  {when}  {event.actor:<12} {event.action:<20} {target}  {details}"


def _verify(args: argparse.Namespace) -> int:
    platform = open_platform()
    report = verify_audit_log(platform, acting_user(args, platform))
    if args.json:
        print_json(
            {
                "ok": report.ok,
                "count": report.count,
                "first_bad_seq": report.first_bad_seq,
                "first_bad_id": report.first_bad_id,
                "problem": report.problem,
            }
        )
    elif report.ok:
        print(f"audit chain intact: {report.count} events verified.")
    else:
        print(
            f"audit chain broken at event #{report.first_bad_seq} (id {report.first_bad_id}): "
            f"{report.problem}. {report.count} events before it verified."
        )
    return 0 if report.ok else 1
