"""A suite document from YAML text: parsed, validated and hashed, or refused by line.

Every refusal is a ``SuiteSpecError`` naming the problem, the YAML line and the case. What would
make a case fail for a reason of its own (a CEL check that does not compile, a JSON Schema or a
pattern that is not one, an unknown fixture) is refused here, when the suite is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import regress
from apscheduler.triggers.cron import CronTrigger
from jsonschema.exceptions import SchemaError

from agent.binding import content_hash
from agent.documents import check_against_schema, check_json_compatible, dotted
from agent.errors import SuiteSpecError, VersionSpecError
from agent.evals.spec import SUITE_SCHEMA, SuiteSpec
from agent.mediation.policy import compile_expression
from agent.tools.registry import ToolRegistry
from agent.tools.validation import compiled_validator, describe_schema_error
from agent.yamlsource import PathItem, YamlSource, parse_yaml

_VALIDATOR = compiled_validator(SUITE_SCHEMA)
_MATCHED = ("output", "trajectory")


@dataclass(frozen=True)
class ParsedSuite:
    """A suite document that passed every check, with its content hash."""

    document: dict[str, Any]
    spec: SuiteSpec
    content_hash: str


def parse_suite(yaml_text: str, *, registry: ToolRegistry | None = None) -> ParsedSuite:
    """Parse and check an evaluation suite's YAML.

    Args:
        yaml_text: the suite as YAML.
        registry: the installed tools and fixtures; when given, ``fixtures`` must name one.

    Raises:
        SuiteSpecError: the YAML, the schema, a duplicate case name, a CEL expression, a JSON
            Schema, a pattern or the fixture is wrong; the message names it and its line.
    """
    source = parse_yaml(yaml_text, error=SuiteSpecError)
    document = source.data
    check_json_compatible(source, document, SuiteSpecError)
    check_against_schema(source, document, _VALIDATOR, SuiteSpecError, part_at=_case_at)
    spec = SuiteSpec.from_document(document)
    seen: set[str] = set()
    for index, case in enumerate(spec.cases):
        if case.name in seen:
            raise SuiteSpecError(
                "another case already has this name; case names must be unique.",
                line=source.line_of(["cases", index, "name"]),
                rule_id=case.name,
            )
        seen.add(case.name)
        _check_expectations(source, ["cases", index, "expect"], case.expect, case.name)
    if spec.schedule is not None:
        try:
            schedule_trigger(spec.schedule)
        except ValueError as exc:
            raise SuiteSpecError(
                f"schedule: {spec.schedule!r} is not a cron expression ({exc}); write five "
                "fields, e.g. '0 * * * *' for every hour.",
                line=source.line_of(["schedule"]),
            ) from None
    if registry is not None and spec.fixtures is not None:
        known = registry.fixture_names
        if spec.fixtures not in known:
            raise SuiteSpecError(
                f"no sandbox fixture named {spec.fixtures!r} is installed; installed: "
                f"{', '.join(known) or 'none'}.",
                line=source.line_of(["fixtures"]),
            )
    return ParsedSuite(document=document, spec=spec, content_hash=content_hash(document))


def schedule_trigger(schedule: str) -> CronTrigger:
    """The APScheduler trigger of a suite's ``schedule`` (five cron fields, in UTC).

    Raises:
        ValueError: it is not a cron expression.
    """
    return CronTrigger.from_crontab(schedule, timezone="UTC")


def _case_at(document: Any, path: Sequence[PathItem]) -> str | None:
    if len(path) >= 2 and path[0] == "cases" and isinstance(path[1], int):
        case = document["cases"][path[1]]
        if isinstance(case, dict) and isinstance(case.get("name"), str):
            return str(case["name"])
    return None


def _check_expectations(
    source: YamlSource, path: list[PathItem], expect: Mapping[str, Any], case: str
) -> None:
    """Compile what a case's expectations will evaluate: CEL, JSON Schemas and patterns."""
    if "output_cel" in expect:
        _cel(source, [*path, "output_cel"], str(expect["output_cel"]), case)
    if "output_schema" in expect:
        _schema(source, [*path, "output_schema"], expect["output_schema"], case)
    for field, matcher in dict(expect.get("output", {})).items():
        _matcher(source, [*path, "output", field], matcher, case)
    call_lists = (
        (["trajectory", "calls"], dict(expect.get("trajectory", {})).get("calls", ())),
        (["governance", "not_allowed"], dict(expect.get("governance", {})).get("not_allowed", ())),
    )
    for where, calls in call_lists:
        for index, call in enumerate(calls):
            for name, matcher in dict(call.get("args", {})).items():
                _matcher(source, [*path, *where, index, "args", name], matcher, case)


def _matcher(source: YamlSource, path: list[PathItem], matcher: Any, case: str) -> None:
    if not isinstance(matcher, Mapping):
        return
    if "pattern" in matcher:
        try:
            regress.Regex(str(matcher["pattern"]))
        except (regress.RegressError, UnicodeEncodeError) as exc:
            raise SuiteSpecError(
                f"{dotted([*path, 'pattern'])}: {matcher['pattern']!r} is not an ECMA-262 "
                f"regular expression ({exc}).",
                line=source.line_of([*path, "pattern"]),
                rule_id=case,
            ) from None
    if "schema" in matcher:
        _schema(source, [*path, "schema"], matcher["schema"], case)
    if "cel" in matcher:
        _cel(source, [*path, "cel"], str(matcher["cel"]), case)
    if "tolerance" in matcher and not isinstance(matcher.get("equals"), int | float):
        raise SuiteSpecError(
            f"{dotted(path)}: a tolerance needs a number to compare with in 'equals'.",
            line=source.line_of(path),
            rule_id=case,
        )


def _schema(source: YamlSource, path: list[PathItem], schema: Any, case: str) -> None:
    try:
        compiled_validator(schema)
    except SchemaError as exc:
        raise SuiteSpecError(
            f"{describe_schema_error(exc, root=dotted(path))}; it must be a valid JSON Schema.",
            line=source.line_of([*path, *exc.absolute_path]),
            rule_id=case,
        ) from None


def _cel(source: YamlSource, path: list[PathItem], expression: str, case: str) -> None:
    try:
        compile_expression(expression, what="check")
    except VersionSpecError as exc:
        raise SuiteSpecError(exc.detail, line=source.line_of(path), rule_id=case) from None
