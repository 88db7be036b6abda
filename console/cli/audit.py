"""``steward audit verify``: recompute the audit log's hash chain."""

from __future__ import annotations

import argparse
from typing import Any

from console.cli.common import open_engine, print_json
from storage.audit import verify_chain
from storage.engine import read_session


def register(commands: Any) -> None:
    parser = commands.add_parser("audit", help="the tamper-evident audit log")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check that no audit event was altered or removed")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    engine = open_engine()
    with read_session(engine) as session:
        report = verify_chain(session)
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
