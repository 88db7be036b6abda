"""Day-to-day operations: ``submit``, ``runs``, ``reviews``, ``kpis`` and ``worker``.

Every read goes through the same role-checked functions of ``agent.reads`` the console uses, and
prints (or with ``--json`` serialises) the read models they return.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import Any

from agent.reads.queue import QueueFilter, QueueItem, open_reviews
from agent.reads.runs import RunFilter, RunSummary, find_runs, run_details
from agent.reads.tasks import WorkItem, work_overview
from agent.settings import check_settings
from agent.tasks import submit_task
from console.cli import args as argtypes
from console.cli.common import (
    CommandError,
    acting_user,
    add_actor_argument,
    add_paging,
    open_platform,
    print_json,
    print_page,
)
from storage.enums import ErrorClass, RunStatus

EXIT_OK = 0
TASK_INPUT = argtypes.json_object("--input", when_empty="pass the task, e.g. '{\"intent\": ...}'")
EDITED_ARGS = argtypes.json_object("--args", when_empty="leave it out to approve as proposed")


def register(commands: Any) -> None:
    submit = commands.add_parser("submit", help="queue a task for an agent")
    submit.add_argument("agent")
    submit.add_argument(
        "--input",
        required=True,
        type=TASK_INPUT,
        help="the task as a JSON object, @FILE.json to read it from a file, or - for stdin",
    )
    submit.add_argument(
        "--priority", type=argtypes.PRIORITY, default=0, help="0 to 100, higher runs first"
    )
    add_actor_argument(submit)
    submit.add_argument("--json", action="store_true")
    submit.set_defaults(handler=_submit)

    tasks = commands.add_parser("tasks", help="work not finished yet")
    task_actions = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")
    in_flight = task_actions.add_parser(
        "list", help="queued, running and waiting tasks, newest first, and the workers"
    )
    add_actor_argument(in_flight)
    add_paging(in_flight, "tasks")
    in_flight.set_defaults(handler=_tasks_list)

    runs = commands.add_parser("runs", help="runs and their traces")
    run_actions = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = run_actions.add_parser(
        "list", help="newest production runs first (or one evaluation's, with --evaluation)"
    )
    listing.add_argument("--agent")
    listing.add_argument("--version", type=argtypes.record_id("a version number"))
    listing.add_argument("--status", choices=[s.value for s in RunStatus])
    listing.add_argument("--error-class", choices=[e.value for e in ErrorClass])
    listing.add_argument(
        "--evaluation",
        type=argtypes.record_id("an evaluation id"),
        help="list this evaluation's runs instead of production's",
    )
    add_actor_argument(listing)
    add_paging(listing, "runs")
    listing.set_defaults(handler=_runs_list)
    show = run_actions.add_parser("show", help="one run with its full trace")
    show.add_argument("run", metavar="RUN", type=argtypes.record_id("a run id"))
    add_actor_argument(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_runs_show)

    queue = commands.add_parser("reviews", help="the review queue and decisions")
    review_actions = queue.add_subparsers(dest="action", required=True, metavar="ACTION")
    pending = review_actions.add_parser("list", help="open reviews, most urgent first")
    for name in ("--agent", "--kind", "--rule", "--tool"):
        pending.add_argument(name)
    pending.add_argument("--version", type=argtypes.record_id("a version number"))
    add_actor_argument(pending)
    add_paging(pending, "reviews")
    pending.set_defaults(handler=_reviews_list)
    for action, helptext in (
        ("approve", "authorize the call as proposed"),
        ("reject", "refuse the call (reason required)"),
        ("override", "let a blocked call through (named roles, reason)"),
    ):
        decide = review_actions.add_parser(action, help=helptext)
        decide.add_argument("review", metavar="REVIEW", type=argtypes.record_id("a review id"))
        add_actor_argument(decide)
        decide.add_argument("--reason", default="")
        decide.add_argument(
            "--seen-version",
            type=argtypes.record_id("a row version"),
            help="fail if the review changed since this row version",
        )
        if action == "approve":
            decide.add_argument(
                "--args",
                type=argtypes.json_object(
                    "--args", when_empty="leave it out to approve as proposed"
                ),
                help="edited arguments as a JSON object, @FILE.json, or - for stdin",
            )
        decide.add_argument("--json", action="store_true")
        decide.set_defaults(handler=_decide, decision=action)

    worker = commands.add_parser("worker", help="claim and run queued work")
    worker.add_argument(
        "--concurrency", type=argtypes.CONCURRENCY, default=2, help="runs processed at once"
    )
    worker.add_argument(
        "--drain",
        action="store_true",
        help="exit once nothing is queued, ready or running elsewhere",
    )
    worker.add_argument(
        "--lease", type=argtypes.LEASE, default=30.0, help="lease length in seconds (1 to 86400)"
    )
    worker.add_argument(
        "--poll", type=argtypes.POLL, default=0.25, help="seconds between claims (0.01 to 60)"
    )
    worker.set_defaults(handler=_worker)
    register_kpis(commands)


def _submit(args: argparse.Namespace) -> int:
    platform = open_platform()
    task_id = submit_task(
        platform,
        acting_user(args, platform),
        args.agent,
        args.input,
        priority=args.priority,
        source="cli",
    )
    if args.json:
        print_json({"task_id": task_id, "status": "queued"})
    else:
        print(f"task {task_id} queued for {args.agent}.")
    return EXIT_OK


def _runs_list(args: argparse.Namespace) -> int:
    platform = open_platform()
    flt = RunFilter(
        agent=args.agent,
        version=args.version,
        status=RunStatus(args.status) if args.status else None,
        error_class=ErrorClass(args.error_class) if args.error_class else None,
        evaluation=args.evaluation,
    )
    page = find_runs(
        platform, acting_user(args, platform), flt, offset=args.offset, limit=args.limit
    )
    print_page(page, args, _run_line, empty="no runs match.")
    return EXIT_OK


def _run_line(r: RunSummary) -> str:
    return (
        f"{r.id:>7}  {r.agent}@v{r.version:<3} {r.status:<15} "
        f"{r.error_class or '-':<17} {r.steps:>4} steps  {r.created_at:%Y-%m-%d %H:%M:%S}"
    )


def _runs_show(args: argparse.Namespace) -> int:
    platform = open_platform()
    trace = run_details(platform, acting_user(args, platform), args.run)
    if args.json:
        print_json(trace)
        return EXIT_OK
    run = trace.run
    print(
        f"run {run.id} of {run.agent} v{run.version}: "
        f"{run.status.value} {run.error_class.value if run.error_class else ''}".rstrip()
    )
    if run.eval_run_id is not None:
        print(f"evaluation {run.eval_run_id}: this run is an evaluation's, not production work.")
    if run.error_message:
        print(f"error: {run.error_message}")
    print(f"task {run.task_id}: {json.dumps(trace.task_input, ensure_ascii=False)}")
    for step in trace.steps:
        extra = step.attributes.get("rule_id") or ""
        error = step.error_class.value if step.error_class else ""
        print(
            f"  {step.seq:>3} {step.kind.value:<15} {step.name:<22} {step.status.value:<9} "
            f"{error:<17} {extra}".rstrip()
        )
    if trace.steps_truncated:
        print(f"  ... the first {len(trace.steps)} of {run.step_count} steps are shown.")
    for call in trace.tool_calls:  # the ledger ids are what `steward undo CALL` takes
        print(f"  call {call.id}: {call.tool} {call.status.value} {json.dumps(call.args)}")
    if run.output is not None:
        print(f"output: {json.dumps(run.output, ensure_ascii=False)}")
    return EXIT_OK


def _reviews_list(args: argparse.Namespace) -> int:
    platform = open_platform()
    flt = QueueFilter(
        agent=args.agent, version=args.version, kind=args.kind, rule_id=args.rule, tool=args.tool
    )
    snapshot = open_reviews(
        platform, acting_user(args, platform), flt, offset=args.offset, limit=args.limit
    )
    print_page(snapshot.page, args, _review_line, empty="the review queue is empty.")
    return EXIT_OK


def _review_line(i: QueueItem) -> str:
    due = f"{i.sla_due_at:%Y-%m-%d %H:%M}" if i.sla_due_at else "-"
    four_eyes = (
        f"  approved {len(i.approved_by)}/{i.approvals_required}"
        if i.approvals_required > 1
        else ""
    )
    return (
        f"{i.id:>6}  {i.kind:<15} {i.status:<8} {i.agent}@v{i.version:<3} "
        f"{i.tool or '-':<18} {i.rule_id or '-':<18} due {due}  {json.dumps(i.args)}{four_eyes}"
    )


def _tasks_list(args: argparse.Namespace) -> int:
    platform = open_platform()
    overview = work_overview(
        platform, acting_user(args, platform), offset=args.offset, limit=args.limit
    )
    if not args.json:
        alive = sum(not w.stale for w in overview.workers)
        print(
            f"workers: {alive} alive of {len(overview.workers)}"
            if overview.workers
            else "workers: none; queued work waits until one starts (steward worker)."
        )
    print_page(overview.work, args, _task_line, empty="nothing is queued, running or waiting.")
    return EXIT_OK


def _task_line(t: WorkItem) -> str:
    run = f"run {t.run_id} {t.run_status.value}" if t.run_id and t.run_status else "no run yet"
    lease = f" held by {t.lease_owner}" if t.lease_owner else ""
    return (
        f"{t.task_id:>7}  {t.agent:<12} {t.status.value:<15} priority {t.priority:<3} "
        f"{run}{lease}  by {t.submitted_by} {t.created_at:%Y-%m-%d %H:%M:%S}"
    )


def _decide(args: argparse.Namespace) -> int:
    from agent import reviews  # the runtime it binds decisions to loads only for decisions

    platform = open_platform()
    actor = acting_user(args, platform)
    result: reviews.DecisionResult
    if args.decision == "approve" and args.args is not None:
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
                "note": result.note,
                "approved_by": list(result.approved_by),
                "approvals_required": result.approvals_required,
            }
        )
    elif result.waiting_for_more:
        print(f"review {result.review_id}: {result.note}")
    else:
        tail = "; the run resumes." if result.run_resumes else "."
        print(f"review {result.review_id} {result.status.value} by {result.decided_by}{tail}")
        if result.note:
            print(f"note: {result.note}")
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    from agent.worker import Worker  # the scheduler is only needed here

    logging.getLogger().setLevel(logging.INFO)
    # The scheduler logs every job execution at INFO, several times a second.
    if not args.verbose:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    platform = open_platform()
    settings = check_settings()
    if settings.metrics_address is not None:
        from agent.telemetry.metrics import serve_metrics

        host, port = settings.metrics_address
        try:
            serve_metrics(platform.engine, (host, port), export_backlog=settings.otel_export)
        except OSError as exc:
            raise CommandError(
                f"STEWARD_METRICS_PORT: /metrics cannot be served on {host}:{port} "
                f"({exc.strerror or exc}); choose a free port."
            ) from exc
    worker = Worker(platform, concurrency=args.concurrency, lease_s=args.lease, poll_s=args.poll)
    if args.drain:
        processed = worker.drain()
        print(f"worker {worker.id} drained: {processed} runs processed.")
        return EXIT_OK
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    running = f"worker {worker.id} running (concurrency {args.concurrency}); Ctrl-C stops it."
    if settings.log_format == "json":  # standard error carries JSON lines only
        logging.getLogger(__name__).info(running)
    else:
        print(running, file=sys.stderr)
    stop.wait()
    worker.stop()
    return EXIT_OK


def register_kpis(commands: Any) -> None:
    kpis = commands.add_parser("kpis", help="the managers' KPIs for a time range")
    kpis.add_argument("--agent")
    kpis.add_argument("--version", type=argtypes.record_id("a version number"))
    kpis.add_argument("--since", type=argtypes.moment, help="ISO date or datetime (UTC)")
    kpis.add_argument("--until", type=argtypes.moment, help="ISO date or datetime (UTC)")
    kpis.add_argument(
        "--autonomy",
        action="store_true",
        help="how reviews end per rule and reviewer, rubber stamps, what reviews held back",
    )
    add_actor_argument(kpis)
    kpis.add_argument("--json", action="store_true")
    kpis.set_defaults(handler=_kpis)


def _kpis(args: argparse.Namespace) -> int:
    from agent.reads.kpis import KpiFilter, kpi_report  # pandas: only for this command

    platform = open_platform()
    actor = acting_user(args, platform)
    flt = KpiFilter(
        since=args.since,
        until=args.until,
        agent=args.agent,
        version=args.version,
    )
    if args.autonomy:
        from console.cli.autonomy import print_autonomy

        print_autonomy(args, platform, actor, flt)
        return EXIT_OK
    report = kpi_report(platform, actor, flt)
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
    coherence = report.proposals
    print(
        f"coherence: valid, in-scope proposals {_percent(coherence.get('valid_rate'))} "
        f"of {coherence.get('checked', 0)}; path efficiency "
        f"{_percent(coherence.get('path_efficiency'))} over "
        f"{coherence.get('path_runs', 0)} succeeded runs"
    )
    if not report.coherence.empty:
        print(report.coherence.to_string(index=False))
    return EXIT_OK


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
