"""``steward evals create | list | show | run | runs | results | compare | add-case``: evaluation
suites as code, running them on a version, reading and comparing the results, and turning a
production run into a case."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from agent.evals.agreement import (
    DEFAULT_LAST,
    MAX_LAST,
    agreement_by_version,
    measure_agreement,
)
from agent.evals.cases import DEFAULT_TAGS, add_case, show_suite
from agent.evals.compare import Comparison, Verdict, compare_evaluations
from agent.evals.service import (
    MAX_CONCURRENCY,
    MAX_REPEAT,
    CaseResult,
    EvaluationInfo,
    evaluation_page,
    evaluation_results,
    run_evaluation,
)
from agent.evals.suites import SuiteInfo, create_suite, list_suites
from console.cli import args as argtypes
from console.cli.common import (
    CommandError,
    acting_user,
    add_actor_argument,
    add_paging,
    open_platform,
    print_json,
    print_page,
    read_source,
)
from storage.enums import EvalRunStatus

EVALUATION = argtypes.record_id("an evaluation id")
REPEAT = argtypes.whole_number(1, MAX_REPEAT, "how many times each case runs")
CONCURRENCY = argtypes.whole_number(1, MAX_CONCURRENCY, "how many attempts run at once")
_SUITE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def register(commands: Any) -> None:
    parser = commands.add_parser("evals", help="evaluation suites and their runs")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="store a suite from a YAML file (engineers)")
    create.add_argument("agent")
    create.add_argument("file", help="the suite YAML, or - for standard input")
    create.add_argument("--name", help="the suite's name (default: the file's name without .yaml)")
    _common(create)
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", help="an agent's suites")
    listing.add_argument("agent")
    _common(listing)
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="one suite and its cases")
    show.add_argument("agent")
    show.add_argument("suite")
    show.add_argument("--yaml", action="store_true", help="print the suite's YAML source too")
    _common(show)
    show.set_defaults(handler=_show)

    run = actions.add_parser(
        "run", help="evaluate a version (the active one by default) against its suites"
    )
    run.add_argument("agent")
    run.add_argument("--version", type=argtypes.record_id("a version number"))
    run.add_argument("--suite", help="run this suite only (default: every suite)")
    run.add_argument("--repeat", type=REPEAT, help="run each case this many times")
    run.add_argument("--concurrency", type=CONCURRENCY, default=1, help="attempts at once")
    _common(run)
    run.set_defaults(handler=_run)

    runs = actions.add_parser("runs", help="an agent's evaluation runs, newest first")
    runs.add_argument("agent")
    runs.add_argument("--suite", help="only this suite's")
    add_actor_argument(runs)
    add_paging(runs, "evaluations")
    runs.set_defaults(handler=_runs)

    results = actions.add_parser("results", help="one evaluation's results, case by case")
    results.add_argument("evaluation", metavar="EVAL_ID", type=EVALUATION)
    _common(results)
    results.set_defaults(handler=_results)

    compare = actions.add_parser("compare", help="evaluation A against evaluation B")
    compare.add_argument("a", metavar="A", type=EVALUATION)
    compare.add_argument("b", metavar="B", type=EVALUATION)
    _common(compare)
    compare.set_defaults(handler=_compare)

    add = actions.add_parser(
        "add-case", help="turn a production run into a case of a suite (engineers)"
    )
    add.add_argument("agent")
    add.add_argument("suite")
    add.add_argument("--from-run", dest="run", required=True, type=argtypes.record_id("a run id"))
    add.add_argument("--name", help="the case's name (default: run-RUN)")
    add.add_argument(
        "--tag",
        dest="tags",
        action="append",
        help=f"a tag of the case; repeat for several (default: {', '.join(DEFAULT_TAGS)})",
    )
    _common(add)
    add.set_defaults(handler=_add_case)
    _register_agreement(actions)


def _register_agreement(actions: Any) -> None:
    agreement = actions.add_parser(
        "agreement",
        help="how often a version does what people decided on past reviewed runs (engineers)",
    )
    agreement.add_argument("agent")
    agreement.add_argument("--version", type=argtypes.record_id("a version number"))
    agreement.add_argument(
        "--last",
        type=argtypes.whole_number(1, MAX_LAST, "reviewed runs"),
        default=DEFAULT_LAST,
        help=f"how many of the latest reviewed runs to replay (default {DEFAULT_LAST})",
    )
    agreement.add_argument("--concurrency", type=CONCURRENCY, default=2, help="cases at once")
    agreement.add_argument(
        "--scores",
        action="store_true",
        help="print each version's latest score instead of measuring (anyone who reads)",
    )
    _common(agreement)
    agreement.set_defaults(handler=_agreement)


def _agreement(args: argparse.Namespace) -> int:
    platform = open_platform()
    actor = acting_user(args, platform)
    if not args.scores:
        measured = measure_agreement(
            platform,
            actor,
            args.agent,
            version=args.version,
            last=args.last,
            concurrency=args.concurrency,
        )
        if not args.json:
            cases = measured.passed + measured.failed
            share = f"{measured.passed / cases:.0%}" if cases else "-"
            print(
                f"{args.agent} v{measured.version} agrees with {measured.passed} of {cases} "
                f"reviewed runs ({share}); evaluation #{measured.id}: "
                f"`steward evals results {measured.id}` says where it does not."
            )
    scores = agreement_by_version(platform, actor, args.agent)
    if args.json:
        print_json({str(n): score.as_dict() for n, score in sorted(scores.items())})
    elif args.scores:
        if not scores:
            print(f"no agreement measured for {args.agent}; run `steward evals agreement`.")
        for number, score in sorted(scores.items()):
            share = f"{score.score:.0%}" if score.score is not None else "-"
            print(
                f"v{number}: {share} ({score.agreed} of {score.cases}) "
                f"evaluation #{score.eval_run_id}, {score.measured_at:%Y-%m-%d %H:%M} UTC"
            )
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    add_actor_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _create(args: argparse.Namespace) -> int:
    name = args.name if args.name is not None else _name_of(args.file)
    text = read_source(args.file)
    platform = open_platform()
    suite = create_suite(platform, acting_user(args, platform), args.agent, name, text)
    if args.json:
        print_json(suite.as_dict())
    else:
        print(
            f"stored suite {suite.name} of {suite.agent}: {suite.cases} cases "
            f"({_tags(suite)}), hash {suite.content_hash[:12]}; run it with: "
            f"steward evals run {suite.agent} --suite {suite.name}"
        )
    return 0


def _name_of(file: str) -> str:
    if file == "-":
        raise CommandError("name the suite with --name when its YAML comes from standard input.")
    stem = Path(file).name.removesuffix(".yaml").removesuffix(".yml")
    return _SUITE_NAME.sub("-", stem).strip("-")[:128] or "suite"


def _list(args: argparse.Namespace) -> int:
    platform = open_platform()
    suites = list_suites(platform, acting_user(args, platform), args.agent)
    if args.json:
        print_json([s.as_dict() for s in suites])
        return 0
    if not suites:
        print(f"{args.agent} has no suites yet: steward evals create {args.agent} FILE.yaml")
    for suite in suites:
        print(_suite_line(suite))
    return 0


def _suite_line(suite: SuiteInfo) -> str:
    gate = "  required" if suite.required else ""
    schedule = f"  schedule '{suite.schedule}'" if suite.schedule else ""
    return (
        f"{suite.name}  {suite.cases} cases ({_tags(suite)})  threshold {suite.threshold:g}"
        f"  {suite.content_hash[:12]}{gate}{schedule}"
    )


def _tags(suite: SuiteInfo) -> str:
    return ", ".join(f"{tag} {n}" for tag, n in suite.tags.items()) or "no tags"


def _show(args: argparse.Namespace) -> int:
    platform = open_platform()
    detail = show_suite(platform, acting_user(args, platform), args.agent, args.suite)
    if args.json:
        print_json(detail.as_dict())
        return 0
    print(_suite_line(detail.suite))
    if detail.suite.description:
        print(detail.suite.description)
    for case in detail.cases:
        repeat = f"  x{case.repeat}" if case.repeat > 1 else ""
        answers = f"  reviewer answers {case.reviewer}" if case.reviewer else ""
        print(
            f"  {case.name}  [{', '.join(case.tags)}]  expects {', '.join(case.expects)}"
            f"{answers}{repeat}"
        )
    if args.yaml:
        print()
        print(detail.source_yaml.rstrip("\n"))
    return 0


def _run(args: argparse.Namespace) -> int:
    platform = open_platform()
    actor = acting_user(args, platform)
    done = run_evaluation(
        platform,
        actor,
        args.agent,
        version=args.version,
        suite=args.suite,
        repeat=args.repeat,
        concurrency=args.concurrency,
        trigger="cli",
    )
    read = [(info, evaluation_results(platform, actor, info.id)[1]) for info in done]
    passed = all(info.status is EvalRunStatus.PASSED for info in done)
    if args.json:
        print_json(
            {
                "passed": passed,
                "evaluations": [
                    {**info.as_dict(), "results": [r.as_dict() for r in results]}
                    for info, results in read
                ],
            }
        )
    else:
        for info, results in read:
            _print_evaluation(info, results, failing_only=True)
    return 0 if passed else 1


def _print_evaluation(
    info: EvaluationInfo, results: tuple[CaseResult, ...], *, failing_only: bool
) -> None:
    summary = info.summary
    print(
        f"evaluation {info.id}: {info.agent} v{info.version} on suite {info.suite}: "
        f"{info.status.value.upper()}, {info.passed} of {info.passed + info.failed} attempts "
        f"passed{_rate(summary.get('pass_rate'), ' (', ')')}"
    )
    if summary.get("by_tag"):
        by_tag = ", ".join(f"{tag} {_rate(rate)}" for tag, rate in summary["by_tag"].items())
        print(f"  pass rate by tag: {by_tag}")
    if int(summary.get("attempts", 0)) > int(summary.get("cases", 0)):
        print(
            f"  pass^k {_rate(summary.get('pass_hat_k'))}, pass@k "
            f"{_rate(summary.get('pass_at_k'))}, flaky: {', '.join(summary['flaky']) or 'none'}"
        )
    if summary.get("security_failed"):
        print(f"  security cases failed: {', '.join(summary['security_failed'])}")
    if info.error:
        print(f"  error: {info.error}")
    for result in results:
        if failing_only and result.passed:
            continue
        attempt = f" (attempt {result.attempt})" if info.repeat > 1 or result.attempt > 1 else ""
        mark = "pass" if result.passed else "FAIL"
        run = f"  run {result.run_id}" if result.run_id else ""
        print(f"  {mark} {result.case}{attempt}{run}")
        for failure in result.failures:
            print(f"      - {failure}")


def _rate(value: Any, before: str = "", after: str = "") -> str:
    return "" if value is None else f"{before}{float(value):.0%}{after}"


def _runs(args: argparse.Namespace) -> int:
    platform = open_platform()
    page = evaluation_page(
        platform,
        acting_user(args, platform),
        args.agent,
        suite=args.suite,
        offset=args.offset,
        limit=args.limit,
    )
    empty = f"{args.agent} has no evaluation yet: steward evals run {args.agent}"
    print_page(page, args, _evaluation_line, empty=empty)
    return 0


def _evaluation_line(info: EvaluationInfo) -> str:
    return (
        f"{info.id}  {info.created_at:%Y-%m-%d %H:%M:%S}  {info.suite}  v{info.version}  "
        f"{info.status.value}  {info.passed}/{info.passed + info.failed}"
        f"{_rate(info.summary.get('pass_rate'), '  ')}  {info.trigger} by {info.created_by}"
    )


def _results(args: argparse.Namespace) -> int:
    platform = open_platform()
    info, results = evaluation_results(platform, acting_user(args, platform), args.evaluation)
    if args.json:
        print_json({**info.as_dict(), "results": [r.as_dict() for r in results]})
    else:
        _print_evaluation(info, results, failing_only=False)
    return 0


def _compare(args: argparse.Namespace) -> int:
    platform = open_platform()
    comparison = compare_evaluations(platform, acting_user(args, platform), args.a, args.b)
    if args.json:
        print_json(comparison.as_dict())
    else:
        print(render_comparison(comparison), end="")
    return 0


def render_comparison(comparison: Comparison) -> str:
    """The comparison as text for a terminal: counts, the cases that changed, the metrics."""
    a, b = comparison.a, comparison.b
    lines = [
        f"A: evaluation {a.id}  {a.suite} v{a.version}  {a.status.value}",
        f"B: evaluation {b.id}  {b.suite} v{b.version}  {b.status.value}",
    ]
    if comparison.note:
        lines.append(f"note: {comparison.note}")
    lines.append(
        "cases: " + ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in comparison.counts.items())
    )
    for change in comparison.cases:
        if change.verdict is Verdict.UNCHANGED_PASS:
            continue
        lines.append(f"  {change.verdict.value:<15} {change.case}")
        if change.verdict in (Verdict.REGRESSED, Verdict.UNCHANGED_FAIL, Verdict.ADDED):
            lines.extend(f"      - {failure}" for failure in change.failures_b)
    lines.append("metrics (A -> B, delta):")
    for metric in comparison.metrics:
        delta = "" if metric.delta is None else f"  {metric.delta:+g}"
        lines.append(f"  {metric.metric:<28} {_number(metric.a)} -> {_number(metric.b)}{delta}")
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _add_case(args: argparse.Namespace) -> int:
    platform = open_platform()
    added = add_case(
        platform,
        acting_user(args, platform),
        args.agent,
        args.suite,
        args.run,
        name=args.name,
        tags=args.tags or DEFAULT_TAGS,
    )
    if args.json:
        print_json(added.as_dict())
    else:
        expects = ", ".join(added.case["expect"])
        print(
            f"added case {added.name} (expects {expects}) from run {added.run_id} to suite "
            f"{added.suite.name}, now {added.suite.cases} cases, hash "
            f"{added.suite.content_hash[:12]}"
        )
    return 0
