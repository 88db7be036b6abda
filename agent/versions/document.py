"""A version document from YAML text: parsed, validated, compiled and hashed, or refused by line.

Every refusal is a ``VersionSpecError`` that names the problem and the YAML line where it is,
and the rule id when the problem is in a policy rule. What would stop a run is refused here,
when the version is created, never later in a run: a CEL expression that does not compile, calls
a function CEL does not have or reads a variable it is not given; a JSON Schema that does not
compile; and, given the tool registry, a tool or a fact that nothing provides.
"""

from __future__ import annotations

import fnmatch
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import limits
from jsonschema.exceptions import SchemaError

from agent.binding import content_hash, policy_hash
from agent.documents import check_against_schema, check_json_compatible, dotted
from agent.errors import VersionSpecError
from agent.mediation.cel_names import OUTPUT_CHECK_VARIABLES, RULE_VARIABLES, check_variables
from agent.mediation.counters import CompiledCounters
from agent.mediation.policy import (
    CompiledOutputChecks,
    CompiledPolicy,
    compile_expression,
    referenced_names,
)
from agent.spec import VERSION_SCHEMA, McpServerDef, VersionSpec
from agent.tools.mcp.pins import schema_hash
from agent.tools.registry import ToolRegistry
from agent.tools.validation import compiled_validator, describe_schema_error
from agent.yamlsource import PathItem, YamlSource, parse_yaml

_VALIDATOR = compiled_validator(VERSION_SCHEMA)


@dataclass(frozen=True)
class ParsedVersion:
    """A version document that passed every check, with what is stored alongside it."""

    document: dict[str, Any]
    spec: VersionSpec
    content_hash: str
    policy_hash: str


def load_version_document(yaml_text: str) -> dict[str, Any]:
    """Parse and validate a version's YAML, returning the validated document.

    Args:
        yaml_text: the version as YAML (policy as code).

    Returns:
        The document as plain JSON-compatible data.

    Raises:
        VersionSpecError: the YAML, the schema, a cross-reference, a rate limit, a JSON Schema
            or a CEL expression is wrong; the message names the problem and its line.
    """
    return parse_version(yaml_text).document


def parse_version(yaml_text: str, *, registry: ToolRegistry | None = None) -> ParsedVersion:
    """Like ``load_version_document``, also returning the typed spec and the hashes.

    Args:
        yaml_text: the version as YAML.
        registry: the tools and fact providers the version's runs will have. When given, every
            name in ``tools`` must be a registered tool and every name in ``policy.facts`` a
            registered fact; ``create_version`` always gives it.

    Raises:
        VersionSpecError: as ``load_version_document``, or a tool or fact is not registered.
    """
    source = parse_yaml(yaml_text)
    document = source.data
    check_json_compatible(source, document, VersionSpecError)
    check_against_schema(source, document, _VALIDATOR, VersionSpecError, part_at=_rule_id_at)
    spec = VersionSpec.from_document(document)
    _check_references(source, document, spec)
    if registry is not None:
        _check_registered(source, spec, registry)
    _check_rate_limits(source, spec)
    _check_json_schemas(source, spec)
    _compile_expressions(source, spec)
    return ParsedVersion(
        document=document,
        spec=spec,
        content_hash=content_hash(document),
        policy_hash=policy_hash(spec.policy),
    )


def _rule_id_at(document: Any, path: Sequence[PathItem]) -> str | None:
    """The id of the policy rule that ``path`` points into, when it has one."""
    if len(path) >= 3 and path[0] == "policy" and path[1] == "rules" and isinstance(path[2], int):
        rule = document["policy"]["rules"][path[2]]
        if isinstance(rule, dict) and isinstance(rule.get("id"), str):
            return str(rule["id"])
    return None


def _check_references(source: YamlSource, document: dict[str, Any], spec: VersionSpec) -> None:
    """Cross-references the schema cannot express: unique ids and names, tools in scope."""
    seen_rules: set[str] = set()
    for index, rule in enumerate(spec.policy.rules):
        if rule.id in seen_rules:
            raise VersionSpecError(
                "this rule id is used by another rule already; rule ids must be unique.",
                line=source.line_of(["policy", "rules", index, "id"]),
                rule_id=rule.id,
            )
        seen_rules.add(rule.id)

    seen_http: set[str] = set()
    for index, tool in enumerate(spec.http_tools):
        line = source.line_of(["http_tools", index, "name"])
        if tool.name in seen_http:
            raise VersionSpecError(
                f"http_tools[{index}]: the HTTP tool {tool.name!r} is defined twice.", line=line
            )
        if tool.name in spec.tools:
            raise VersionSpecError(
                f"http_tools[{index}]: {tool.name!r} is also listed in tools; a name must mean "
                "one tool (a registered tool or an HTTP tool, not both).",
                line=line,
            )
        seen_http.add(tool.name)

    _check_mcp_servers(source, spec, seen_http)

    in_scope = spec.tool_names
    for index, tool in enumerate(spec.http_tools):
        if tool.compensating_tool is not None and tool.compensating_tool not in in_scope:
            raise VersionSpecError(
                f"http_tools[{index}]: the compensating tool {tool.compensating_tool!r} is not "
                f"in this version's tools ({', '.join(in_scope) or 'none'}).",
                line=source.line_of(["http_tools", index, "compensating_tool"]),
            )
    for index, server in enumerate(spec.mcp_servers):
        for number, pin in enumerate(server.tools):
            if pin.compensating_tool is not None and pin.compensating_tool not in in_scope:
                raise VersionSpecError(
                    f"mcp_servers[{index}] ({server.name}): the compensating tool "
                    f"{pin.compensating_tool!r} of {pin.name!r} is not in this version's tools "
                    f"({', '.join(in_scope)}).",
                    line=source.line_of(
                        ["mcp_servers", index, "tools", number, "compensating_tool"]
                    ),
                )

    # A rule or a rate limit naming a tool the version does not have would never apply: a
    # misspelt tool name in a deny rule must not pass silently.
    for index, raw_rule in enumerate(document["policy"].get("rules", ())):
        pattern = raw_rule.get("tool")
        if pattern is not None and not _matches_any(pattern, in_scope):
            raise VersionSpecError(
                f"the rule's tool {pattern!r} matches no tool of this version "
                f"({', '.join(in_scope) or 'none'}), so the rule could never apply.",
                line=source.line_of(["policy", "rules", index, "tool"]),
                rule_id=raw_rule["id"],
            )
    for index, limit in enumerate(spec.rate_limits):
        if not _matches_any(limit.tool, in_scope):
            raise VersionSpecError(
                f"rate_limits[{index}]: the tool {limit.tool!r} matches no tool of this version "
                f"({', '.join(in_scope) or 'none'}).",
                line=source.line_of(["rate_limits", index, "tool"]),
            )


def _check_mcp_servers(source: YamlSource, spec: VersionSpec, http_names: set[str]) -> None:
    """Each MCP server is started or reached one way, and pins tools whose hashes match their
    schemas and whose names mean one tool of the version."""
    seen_servers: set[str] = set()
    seen_tools: set[str] = set()
    for index, server in enumerate(spec.mcp_servers):
        where = f"mcp_servers[{index}] ({server.name})"
        line = source.line_of(["mcp_servers", index, "name"])
        if server.name in seen_servers:
            raise VersionSpecError(f"{where}: the MCP server is defined twice.", line=line)
        seen_servers.add(server.name)
        if bool(server.command) == (server.url is not None):
            raise VersionSpecError(
                f"{where}: give either command (a server Steward starts over stdio) or url (a "
                "streamable HTTP server), not both and not neither.",
                line=line,
            )
        if server.url is not None and (server.env or server.cwd):
            raise VersionSpecError(
                f"{where}: env and cwd apply to a command; an HTTP server takes headers.",
                line=source.line_of(["mcp_servers", index, "env" if server.env else "cwd"]),
            )
        if server.command and server.headers:
            raise VersionSpecError(
                f"{where}: headers apply to a url; a command takes env.",
                line=source.line_of(["mcp_servers", index, "headers"]),
            )
        if not server.tools:
            raise VersionSpecError(
                f"{where}: the server pins no tools, so none of its tools could be called; run "
                f"`{inspect_command(server)}` and paste the tools it prints.",
                line=line,
            )
        for number, pin in enumerate(server.tools):
            pin_line = source.line_of(["mcp_servers", index, "tools", number, "name"])
            if pin.name in spec.tools or pin.name in http_names or pin.name in seen_tools:
                raise VersionSpecError(
                    f"{where}: the tool name {pin.name!r} is already used by another tool of "
                    "this version; give the pin another name and set server_tool to its name on "
                    "the server.",
                    line=pin_line,
                )
            seen_tools.add(pin.name)
            expected = schema_hash(pin.remote_name, pin.args_schema)
            if pin.schema_hash != expected:
                raise VersionSpecError(
                    f"{where}: the schema_hash of {pin.name!r} does not match its args_schema "
                    f"(which hashes to {expected}); pins are copied from the server, not edited: "
                    f"run `{inspect_command(server)}` again.",
                    line=source.line_of(["mcp_servers", index, "tools", number, "schema_hash"]),
                )


def inspect_command(server: McpServerDef) -> str:
    """The ``steward mcp inspect`` command that prints ``server``'s entry with its pins."""
    if server.url is not None:
        headers = "".join(f" --header {shlex.quote(f'{k}={v}')}" for k, v in server.headers.items())
        target = f"--url {shlex.quote(server.url)}{headers}"
    else:
        target = f"--command {shlex.quote(shlex.join(server.command))}"
    return f"steward mcp inspect {target} --name {server.name} --yaml"


def _matches_any(pattern: str, names: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for name in names)


def _check_rate_limits(source: YamlSource, spec: VersionSpec) -> None:
    for index, limit in enumerate(spec.rate_limits):
        try:
            limits.parse(limit.limit)
        except ValueError:
            raise VersionSpecError(
                f"rate_limits[{index}]: {limit.limit!r} is not a rate limit; write e.g. "
                "'30/minute', '5 per second' or '1000/day'.",
                line=source.line_of(["rate_limits", index, "limit"]),
            ) from None


def _check_registered(source: YamlSource, spec: VersionSpec, registry: ToolRegistry) -> None:
    """Every tool and fact a run would look up by name exists, so none is missing mid-run."""
    registered = registry.tool_names
    defined = {tool.name for tool in spec.http_tools}
    for index, name in enumerate(spec.tools):
        if name not in registered and name not in defined:
            raise VersionSpecError(
                f"tools[{index}]: no tool named {name!r} is registered or defined in http_tools; "
                f"registered tools: {', '.join(registered) or 'none'}.",
                line=source.line_of(["tools", index]),
            )
    facts = registry.fact_names
    for index, name in enumerate(spec.policy.facts):
        if name not in facts:
            raise VersionSpecError(
                f"policy.facts[{index}]: no registered fact provider offers {name!r}; "
                f"registered facts: {', '.join(facts) or 'none'}.",
                line=source.line_of(["policy", "facts", index]),
            )


def _check_json_schemas(source: YamlSource, spec: VersionSpec) -> None:
    """The output contract and the HTTP tools' schemas compile as JSON Schema draft 2020-12,
    with ECMA-262 patterns, as they will be compiled in a run."""
    schemas: list[tuple[list[PathItem], Mapping[str, Any]]] = [
        (["output", "schema"], spec.output.schema)
    ]
    for index, server in enumerate(spec.mcp_servers):
        for number, pin in enumerate(server.tools):
            schemas.append(
                (["mcp_servers", index, "tools", number, "args_schema"], pin.args_schema)
            )
    for index, tool in enumerate(spec.http_tools):
        schemas.append((["http_tools", index, "args_schema"], tool.args_schema))
        schemas.append((["http_tools", index, "result_schema"], tool.result_schema))
    for path, schema in schemas:
        try:
            compiled_validator(schema)
        except SchemaError as exc:
            raise VersionSpecError(
                f"{describe_schema_error(exc, root=dotted(path))}; {dotted(path)} must be a "
                "valid JSON Schema (draft 2020-12).",
                line=source.line_of([*path, *exc.absolute_path]),
            ) from None


def _compile_expressions(source: YamlSource, spec: VersionSpec) -> None:
    """Compile every CEL expression now and check the names it reads, so a version that cannot
    run is never stored."""
    try:
        CompiledPolicy(spec.policy)
        for rule in spec.policy.rules:
            program = compile_expression(rule.when, what="condition", rule_id=rule.id)
            check_variables(program, what="condition", allowed=RULE_VARIABLES, rule_id=rule.id)
    except VersionSpecError as exc:
        index = next(
            (i for i, rule in enumerate(spec.policy.rules) if rule.id == exc.rule_id), None
        )
        line = None if index is None else source.line_of(["policy", "rules", index, "when"])
        raise VersionSpecError(exc.detail, line=line, rule_id=exc.rule_id) from None
    for index, check in enumerate(spec.output.checks):
        what = f"output check {check.id!r}"
        try:
            CompiledOutputChecks((check,))
            program = compile_expression(check.expr, what=what)
            check_variables(program, what=what, allowed=OUTPUT_CHECK_VARIABLES)
        except VersionSpecError as exc:
            raise VersionSpecError(
                exc.detail, line=source.line_of(["output", "checks", index, "expr"])
            ) from None
    known = {counter.id for counter in spec.policy.counters}
    for index, counter in enumerate(spec.policy.counters):
        try:
            CompiledCounters((counter,))
        except VersionSpecError as exc:
            field = "sum" if "sum" in exc.detail.split(" does not compile")[0] else "per"
            raise VersionSpecError(
                exc.detail, line=source.line_of(["policy", "counters", index, field])
            ) from None
        if not _matches_any(counter.tool, spec.tool_names):
            raise VersionSpecError(
                f"counter {counter.id!r} counts the tool {counter.tool!r}, which matches no tool "
                f"of this version ({', '.join(spec.tool_names) or 'none'}).",
                line=source.line_of(["policy", "counters", index, "tool"]),
            )
    for index, rule in enumerate(spec.policy.rules):
        unknown = sorted((referenced_names(rule.when, "counters") or set()) - known)
        if unknown:
            raise VersionSpecError(
                f"the condition reads counters.{unknown[0]}, which policy.counters does not "
                f"define ({', '.join(sorted(known)) or 'none defined'}).",
                line=source.line_of(["policy", "rules", index, "when"]),
                rule_id=rule.id,
            )
