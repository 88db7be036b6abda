"""Day-to-day operations: ``submit``, ``runs``, ``reviews`` and ``worker``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from agent.actors import READ_ROLES, Actor, require
from agent.platform import Platform
from agent.plugins import installed_registry
from agent.tasks import submit_task
from agent.users import actor_for
from console.cli.common import CommandError, open_engine, open_platform, print_json
from storage.engine import read_session
from storage.enums import ErrorClass, RunStatus
from storage.queries.runs import list_runs, review_queue, run_detail

EXIT_OK = 0


def register(commands: Any) -> None:
    submit = commands.add_parser("submit", help="queue a task for an agent")
    submit.add_argument("agent")
    submit.add_argument("--input", required=True, help="the task as a JSON object")
    submit.add_argument("--priority", type=int, default=0)
    _as(submit)
    submit.add_argument("--json", action="store_true")
    submit.set_defaults(handler=_submit)

    runs = commands.add_parser("runs", help="runs and their traces")
    run_actions = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = run_actions.add_parser("list", help="newest runs first")
    listing.add_argument("--agent")
    listing.add_argument("--version", type=int)
    listing.add_argument("--status", choices=[s.value for s in RunStatus])
    listing.add_argument("--error-class", choices=[e.value for e in ErrorClass])
    listing.add_argument("--limit", type=int, default=50)
    _as(listing, required=False)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_runs_list)
    show = run_actions.add_parser("show", help="one run with its full trace")
    show.add_argument("run", type=int)
    _as(show, required=False)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_runs_show)

    queue = commands.add_parser("reviews", help="the review queue and decisions")
    review_actions = queue.add_subparsers(dest="action", required=True, metavar="ACTION")
    pending = review_actions.add_parser("list", help="open reviews, most urgent first")
    for name in ("--agent", "--kind", "--rule", "--tool"):
        pending.add_argument(name)
    pending.add_argument("--version", type=int)
    _as(pending, required=False)
    pending.add_argument("--json", action="store_true")
    pending.set_defaults(handler=_reviews_list)
    for action, helptext in (
        ("approve", "authorize the call as proposed"),
        ("reject", "refuse the call (reason required)"),
        ("override", "let a blocked call through (named roles, reason)"),
    ):
        decide = review_actions.add_parser(action, help=helptext)
        decide.add_argument("review", type=int)
        _as(decide)
        decide.add_argument("--reason", default="")
        decide.add_argument(
            "--seen-version", type=int, help="fail if the review changed since this row version"
        )
        if action == "approve":
            decide.add_argument("--args", help="edited arguments as a JSON object")
        decide.add_argument("--json", action="store_true")
        decide.set_defaults(handler=_decide, decision=action)

    worker = commands.add_parser("worker", help="claim and run queued work")
    worker.add_argument("--concurrency", type=int, default=2)
    worker.add_argument(
        "--drain",
        action="store_true",
        help="exit once nothing is queued, ready or running elsewhere",
    )
    worker.add_argument("--lease", type=float, default=30.0, help="lease length in seconds")
    worker.add_argument("--poll", type=float, default=0.25, help="seconds between claims")
    worker.set_defaults(handler=_worker)
    register_kpis(commands)


def _as(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    default = os.environ.get("STEWARD_USER") or None
    parser.add_argument(
        "--as",
        dest="actor",
        required=required and default is None,
        default=default,
        metavar="USER",
        help="the user acting (roles are checked); default $STEWARD_USER",
    )


def _actor(args: argparse.Namespace, platform: Platform) -> Actor | None:
    if not getattr(args, "actor", None):
        return None
    return actor_for(platform, args.actor)


def _submit(args: argparse.Namespace) -> int:
    platform = open_platform()
    actor = _actor(args, platform)
    assert actor is not None
    task_id = submit_task(
        platform, actor, args.agent, args.input, priority=args.priority, source="cli"
    )
    if args.json:
        print_json({"task_id": task_id, "status": "queued"})
    else:
        print(f"task {task_id} queued for {args.agent}.")
    return EXIT_OK


def _reader(args: argparse.Namespace, engine: Any) -> None:
    actor = _actor(args, Platform(engine, installed_registry()))
    if actor is not None:
        require(actor, READ_ROLES, "read runs")


def _runs_list(args: argparse.Namespace) -> int:
    engine = open_engine()
    _reader(args, engine)
    with read_session(engine) as session:
        rows = list_runs(
            session=session,
            agent=args.agent,
            version=args.version,
            status=RunStatus(args.status) if args.status else None,
            error_class=ErrorClass(args.error_class) if args.error_class else None,
            limit=args.limit,
        )
    if args.json:
        print_json([r.as_dict() for r in rows])
        return EXIT_OK
    for r in rows:
        print(
            f"{r.id:>7}  {r.agent}@v{r.version:<3} {r.status:<15} "
            f"{r.error_class or '-':<17} {r.steps:>4} steps  {r.created_at:%Y-%m-%d %H:%M:%S}"
        )
    if not rows:
        print("no runs match.")
    return EXIT_OK


def _runs_show(args: argparse.Namespace) -> int:
    engine = open_engine()
    _reader(args, engine)
    with read_session(engine) as session:
        detail = run_detail(args.run, session=session)
    if detail is None:
        raise CommandError(f"run {args.run} does not exist.")
    if args.json:
        print_json(detail)
        return EXIT_OK
    run = detail["run"]
    print(
        f"run {run['id']} of {detail['agent']} v{detail['version']['number']}: "
        f"{run['status']} {run['error_class'] or ''}".rstrip()
    )
    print(f"task {detail['task']['id']}: {json.dumps(detail['task']['input'])}")
    for step in detail["steps"]:
        extra = step["attributes"].get("rule_id") or ""
        print(
            f"  {step['seq']:>3} {step['kind']:<15} {step['name']:<22} {step['status']:<9} "
            f"{step['error_class'] or '':<17} {extra}"
        )
    if run["output"]:
        print(f"output: {json.dumps(run['output'])}")
    return EXIT_OK


def _reviews_list(args: argparse.Namespace) -> int:
    engine = open_engine()
    _reader(args, engine)
    with read_session(engine) as session:
        items = review_queue(
            session=session,
            agent=args.agent,
            version=args.version,
            kind=args.kind,
            rule_id=args.rule,
            tool=args.tool,
        )
    if args.json:
        print_json([i.as_dict() for i in items])
        return EXIT_OK
    for i in items:
        due = f"{i.sla_due_at:%Y-%m-%d %H:%M}" if i.sla_due_at else "-"
        print(
            f"{i.id:>6}  {i.kind:<15} {i.status:<8} {i.agent}@v{i.version:<3} "
            f"{i.tool or '-':<18} {i.rule_id or '-':<18} due {due}  {json.dumps(i.args)}"
        )
    if not items:
        print("the review queue is empty.")
    return EXIT_OK


def _decide(args: argparse.Namespace) -> int:
    from agent import reviews  # the runtime it binds decisions to loads only for decisions

    platform = open_platform()
    actor = _actor(args, platform)
    assert actor is not None
    result: reviews.DecisionResult
    if args.decision == "approve" and args.args:
        result = reviews.edit_and_approve(
            platform,
            actor,
            args.review,
            args.args,
            reason=args.reason,
            seen_version=args.seen_version,
        )
    elif args.decision == "approve":
        result = reviews.approve(
            platform, actor, args.review, reason=args.reason, seen_version=args.seen_version
        )
    elif args.decision == "reject":
        result = reviews.reject(
            platform, actor, args.review, args.reason, seen_version=args.seen_version
        )
    else:
        result = reviews.override(
            platform, actor, args.review, args.reason, seen_version=args.seen_version
        )
    if args.json:
        print_json(
            {
                "review_id": result.review_id,
                "status": result.status.value,
                "decided_by": result.decided_by,
                "run_id": result.run_id,
                "run_resumes": result.run_resumes,
            }
        )
    else:
        tail = "; the run resumes." if result.run_resumes else "."
        print(f"review {result.review_id} {result.status.value} by {result.decided_by}{tail}")
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    from agent.worker import Worker  # the scheduler is only needed here

    if args.concurrency < 1:
        raise CommandError("--concurrency must be at least 1.")
    logging.getLogger().setLevel(logging.INFO)
    # The scheduler logs every job execution at INFO, several times a second.
    if not args.verbose:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    worker = Worker(
        open_platform(), concurrency=args.concurrency, lease_s=args.lease, poll_s=args.poll
    )
    if args.drain:
        processed = worker.drain()
        print(f"worker {worker.id} drained: {processed} runs processed.")
        return EXIT_OK
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    print(
        f"worker {worker.id} running (concurrency {args.concurrency}); Ctrl-C stops it.",
        file=sys.stderr,
    )
    stop.wait()
    worker.stop()
    return EXIT_OK


def register_kpis(commands: Any) -> None:
    kpis = commands.add_parser("kpis", help="the managers' KPIs for a time range")
    kpis.add_argument("--agent")
    kpis.add_argument("--version", type=int)
    kpis.add_argument("--since", help="ISO date or datetime (UTC)")
    kpis.add_argument("--until", help="ISO date or datetime (UTC)")
    _as(kpis, required=False)
    kpis.add_argument("--json", action="store_true")
    kpis.set_defaults(handler=_kpis)


def _when(text: str | None, flag: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{flag} must be an ISO date or datetime, not {text!r}.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _kpis(args: argparse.Namespace) -> int:
    from storage.queries.kpis import KpiFilter, compute_kpis  # pandas: only for this command

    engine = open_engine()
    _reader(args, engine)
    flt = KpiFilter(
        since=_when(args.since, "--since"),
        until=_when(args.until, "--until"),
        agent=args.agent,
        version=args.version,
    )
    with read_session(engine) as session:
        report = compute_kpis(flt, session=session)
    if args.json:
        print_json(report.as_dict())
        return EXIT_OK
    runs = report.runs
    print(
        f"runs: {runs['total']} ({runs['finished']} finished), "
        f"completion {_percent(runs['completion_rate'])}, "
        f"autonomous {_percent(runs['autonomous_resolution_rate'])}, "
        f"escalation {_percent(runs['escalation_rate'])}"
    )
    latency = report.latency["run_ms"]
    print(
        f"run latency ms (agent time): p50 {latency['p50']}  p95 {latency['p95']}  "
        f"p99 {latency['p99']}"
    )
    rv = report.reviews
    print(
        f"reviews: {rv.get('total', 0)} ({rv.get('open', 0)} open), decisions "
        f"{rv.get('decisions', {})}, SLA compliance {_percent(rv.get('sla_compliance'))}"
    )
    print("errors: " + (", ".join(f"{k} {v}" for k, v in sorted(report.errors.items())) or "none"))
    if not report.tools.empty:
        print("tools:")
        print(report.tools.to_string(index=False))
    if not report.policy.empty:
        print("policy decisions by rule:")
        print(report.policy.to_string(index=False))
    return EXIT_OK


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
