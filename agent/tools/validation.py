"""Checks of values against JSON schemas, with regular expressions as JSON Schema means them.

``compiled_validator`` is the one way Steward builds a JSON Schema validator: draft 2020-12,
formats checked, and ``pattern``, ``patternProperties`` (with the ``additionalProperties`` that
depends on it) and the ``regex`` format evaluated as ECMA-262 regular expressions by
``regress``, as the specification says, instead of by Python's ``re``. The two disagree where it
matters for identifiers: under ``re``, ``$`` also matches before a final newline (so
``"C-1002\\n"`` matched ``^C-[0-9]{4}$``) and ``\\d``/``\\w`` match non-ASCII digits and letters.

Validators are compiled once per distinct schema (keyed by its canonical JSON) and reused, so
the mediation layer can validate every call without recompiling. Errors come back as readable
lines, ``"args.amount: -5 is less than the minimum of 0"``, sorted by path.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import regress
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from agent.errors import InvalidInput
from agent.tools.base import ToolSpec

_MAX_MESSAGE = 300


def validate_args(spec: ToolSpec, args: Any) -> list[str]:
    """Problems with a call's arguments, as ``"args.<path>: <message>"`` lines; empty if valid.

    Besides the tool's schema, every string in the arguments (at any depth, keys included) is
    refused if it holds a control character other than tab, line feed and carriage return, or a
    lone UTF-16 surrogate: free text may span lines, but nothing a tool is given should carry
    terminal escapes, NUL bytes or text that is not Unicode.

    Raises:
        InvalidInput: the tool's own argument schema is not a valid JSON Schema.
    """
    problems = validate(spec.args_schema, args, root="args", what=f"tool {spec.name!r} arguments")
    problems += _control_characters("args", args)
    return sorted(problems)


def validate_result(spec: ToolSpec, result: Any) -> list[str]:
    """Problems with a tool's result, as ``"result.<path>: <message>"`` lines; empty if valid.

    Raises:
        InvalidInput: the tool's own result schema is not a valid JSON Schema.
    """
    return validate(spec.result_schema, result, root="result", what=f"tool {spec.name!r} result")


def validate(
    schema: Mapping[str, Any], instance: Any, *, root: str = "$", what: str = "schema"
) -> list[str]:
    """Validate ``instance`` against ``schema`` (JSON Schema draft 2020-12, formats checked).

    Args:
        schema: the JSON Schema.
        instance: the value to check.
        root: how the top of ``instance`` is named in messages.
        what: what the schema belongs to, for the error raised when the schema is invalid.

    Returns:
        One readable line per problem, sorted by path; empty when the instance is valid.

    Raises:
        InvalidInput: ``schema`` itself is not a valid JSON Schema.
    """
    try:
        validator = compiled_validator(schema)
    except SchemaError as exc:
        raise InvalidInput(
            f"{what}: the JSON schema is invalid: {describe_schema_error(exc)}"
        ) from None
    problems = []
    for error in validator.iter_errors(instance):
        path = _render_path(root, error.absolute_path)
        problems.append(f"{path}: {_clip(error.message)}")
    return sorted(problems)


def compiled_validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    """The cached validator for ``schema``: equal schemas share one compiled validator.

    Every JSON Schema in Steward is compiled here (tool arguments and results, output
    contracts, the version document's own schema), so all of them read patterns alike.

    Raises:
        jsonschema.exceptions.SchemaError: ``schema`` is not a valid JSON Schema, or one of its
            regular expressions is not ECMA-262; ``describe_schema_error`` words it.
    """
    # Tools keep their schema objects for life, so most look-ups hit the identity cache and
    # skip serialising the schema; the entry keeps the schema alive so its id stays unique.
    cached = _by_identity.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator = _compile(json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str))
    if len(_by_identity) < _IDENTITY_CACHE_SIZE:
        _by_identity[id(schema)] = (schema, validator)
    return validator


def describe_schema_error(error: SchemaError, *, root: str = "") -> str:
    """One line saying where a schema is invalid and why, e.g. ``properties.id.pattern: '(' is
    not an ECMA-262 regular expression (Unbalanced parenthesis)``.

    Args:
        error: raised by ``compiled_validator``.
        root: how the schema itself is named, put in front of the path (``output.schema``).
    """
    closest: SchemaError | ValidationError = error
    if error.context:
        # The meta-schema's anyOf says only "not valid under any of the given schemas";
        # best_match names the alternative that came closest ("is not one of [...]").
        closest = best_match(error.context) or error
    path = _render_path(root, closest.absolute_path).lstrip(".")
    if closest.validator == "format" and closest.validator_value == "regex":
        reason = f" ({closest.cause})" if closest.cause is not None else ""
        message = f"{closest.instance!r} is not an ECMA-262 regular expression{reason}"
    else:
        message = closest.message
    return f"{path}: {_clip(message)}" if path else _clip(message)


_IDENTITY_CACHE_SIZE = 4096
_by_identity: dict[int, tuple[Mapping[str, Any], Draft202012Validator]] = {}


@functools.lru_cache(maxsize=512)
def _compile(canonical_schema: str) -> Draft202012Validator:
    schema = json.loads(canonical_schema)
    # check_schema validates against the draft's own meta-schema with the class registered for
    # it, so the ECMA format checker must be passed for "pattern" to be checked as ECMA-262.
    _EcmaValidator.check_schema(schema, format_checker=_FORMAT_CHECKER)
    _refuse_unevaluated_next_to_patterns(schema, [])
    return _EcmaValidator(schema, format_checker=_FORMAT_CHECKER)


# --- the ECMA-262 dialect ---------------------------------------------------------------------
# jsonschema evaluates patterns with Python's re; its validators.extend() replaces keyword
# functions, which is how check-jsonschema (from the same maintainers) evaluates patterns with
# regress, as here. The keyword bodies follow jsonschema's own, with only the engine changed.


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> regress.Regex:
    # The "u" flag gives the Unicode semantics JSON Schema's test suite expects (\p{L}, code
    # points rather than UTF-16 units).
    return regress.Regex(pattern, flags="u")


def _search(pattern: str, text: str) -> bool:
    try:
        return _regex(pattern).find(text) is not None
    except UnicodeEncodeError:
        # regress takes UTF-8, which cannot hold a lone surrogate; JavaScript would see one
        # code point there, and U+FFFD stands in for it (validate_args refuses such text).
        replaced = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return _regex(pattern).find(replaced) is not None


def _is_ecma_regex(instance: object) -> bool:
    if isinstance(instance, str):
        _regex(instance)
    return True


def _pattern(
    validator: Draft202012Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Draft202012Validator,
    patterns: Mapping[str, Any],
    instance: Any,
    schema: Mapping[str, Any],
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Draft202012Validator, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    # Which keys are "additional" depends on patternProperties, so this keyword must match
    # property names with the same engine as _pattern_properties.
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            listed = ", ".join(repr(each) for each in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")
        else:
            unexpected = ", ".join(repr(each) for each in sorted(extras, key=str))
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({unexpected} {verb} unexpected)"
            )


def _refuse_unevaluated_next_to_patterns(node: Any, path: list[str | int]) -> None:
    """jsonschema decides which keys patternProperties evaluated for unevaluatedProperties
    with Python's re, inside a helper that cannot be swapped; rather than let that one keyword
    read patterns differently, the combination is refused with what to write instead."""
    if isinstance(node, dict):
        if "unevaluatedProperties" in node and "patternProperties" in node:
            raise SchemaError(
                "unevaluatedProperties next to patternProperties is not supported (its patterns "
                "would not be read as ECMA-262); use additionalProperties instead",
                path=[*path, "unevaluatedProperties"],
            )
        for key, value in node.items():
            _refuse_unevaluated_next_to_patterns(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _refuse_unevaluated_next_to_patterns(value, [*path, index])


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, (check, raises) in Draft202012Validator.FORMAT_CHECKER.checkers.items():
        checker.checks(name, raises)(check)
    checker.checks("regex", raises=(regress.RegressError, UnicodeEncodeError))(_is_ecma_regex)
    return checker


_FORMAT_CHECKER = _format_checker()
# extend() builds a sibling class of Draft202012Validator with the same interface (subclassing
# validator classes is deprecated); the stubs leave extend() untyped.
_EcmaValidator: type[Draft202012Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
    format_checker=_FORMAT_CHECKER,
)


# --- control characters -----------------------------------------------------------------------

# C0 controls but tab, line feed and carriage return; DEL and C1 controls; surrogates. Searched
# with one compiled pattern: arguments are checked on every call, and a loop over characters
# costs more than the rest of the check for a long text.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _forbidden_character(text: str) -> str | None:
    """How the first forbidden character of ``text`` is named, or None when there is none."""
    found = _FORBIDDEN.search(text)
    if found is None:
        return None
    point = ord(found.group())
    if 0xD800 <= point <= 0xDFFF:
        return f"a lone surrogate (U+{point:04X}), which is not text"
    return f"a control character (U+{point:04X})"


def _control_characters(path: str, value: Any) -> list[str]:
    problems: list[str] = []
    if isinstance(value, str):
        found = _forbidden_character(value)
        if found is not None:
            problems.append(f"{path}: contains {found}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found = _forbidden_character(key) if isinstance(key, str) else None
            if found is not None:
                problems.append(f"{path}: a key contains {found}")
            if isinstance(item, str) and _FORBIDDEN.search(item) is None:
                continue  # the common case: no path to render
            problems += _control_characters(_render_path(path, [key]), item)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for index, item in enumerate(value):
            problems += _control_characters(_render_path(path, [index]), item)
    return problems


def _clip(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _render_path(root: str, parts: Any) -> str:
    rendered = root
    for part in parts:
        rendered += f"[{part}]" if isinstance(part, int) else f".{_printable(str(part))}"
    return rendered


def _printable(text: str) -> str:
    """``text`` with unprintable characters escaped, so a message stays on one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
