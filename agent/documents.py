"""Documents written as YAML (agent versions, evaluation suites): the checks they share.

Every refusal names the problem and the line of the YAML source where it is, so a person can
fix the file they wrote; what a document may hold is its kind's JSON Schema.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from agent.errors import DocumentError
from agent.yamlsource import PathItem, YamlSource

_MAX_MESSAGE = 240
_JSON_TYPES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def dotted(path: Sequence[PathItem]) -> str:
    """``policy.rules[2].when`` for the path ``("policy", "rules", 2, "when")``."""
    text = ""
    for item in path:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text or "the document"


def check_json_compatible(
    source: YamlSource,
    value: Any,
    error: type[DocumentError],
    path: list[PathItem] | None = None,
) -> None:
    """Refuse what JSON cannot store: dates, binary, non-string keys, NaN and infinity.

    Raises:
        DocumentError: of class ``error``, naming the place and its line.
    """
    path = path or []
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(
                    f"{dotted(path)}: the key {key!r} is not a string; quote it.",
                    line=source.line_of([*path, str(key)]),
                )
            check_json_compatible(source, item, error, [*path, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_compatible(source, item, error, [*path, index])
    elif isinstance(value, float) and not math.isfinite(value):
        raise error(f"{dotted(path)}: {value} is not a finite number.", line=source.line_of(path))
    elif type(value) not in _JSON_TYPES:
        raise error(
            f"{dotted(path)}: a {type(value).__name__} value ({value!r:.60}) cannot be stored; "
            "quote it to make it a string.",
            line=source.line_of(path),
        )


def check_against_schema(
    source: YamlSource,
    document: Any,
    validator: Draft202012Validator,
    error: type[DocumentError],
    *,
    part_at: Callable[[Any, Sequence[PathItem]], str | None] | None = None,
) -> None:
    """Refuse a document its JSON Schema does not accept, naming the first problem's line.

    Args:
        source: the parsed YAML, for line numbers.
        document: its data.
        validator: the document kind's schema.
        error: the exception class to raise.
        part_at: names the part (a rule, a case) a path points into, for the message.

    Raises:
        DocumentError: of class ``error``.
    """
    errors = list(validator.iter_errors(document))
    if not errors:
        return
    located = sorted(
        ((_error_line(source, error), list(error.absolute_path), error) for error in errors),
        key=lambda entry: (entry[0], [str(p) for p in entry[1]]),
    )
    line, path, first = located[0]
    more = f" ({len(errors) - 1} more problem{'s' if len(errors) > 2 else ''} after this one)"
    raise error(
        f"{dotted(path)}: {_describe(first)}{more if len(errors) > 1 else ''}",
        line=line,
        rule_id=part_at(document, path) if part_at is not None else None,
    )


def _error_line(source: YamlSource, error: ValidationError) -> int:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = _allowed_keys(error)
        extra = [key for key in error.instance if key not in allowed]
        if extra:
            return source.key_line(path, str(extra[0]))
    return source.line_of(path)


def _allowed_keys(error: ValidationError) -> list[str]:
    schema = error.schema
    properties = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
    return sorted(properties)


def _describe(error: ValidationError) -> str:
    if error.validator == "type":
        kind = _JSON_TYPES.get(type(error.instance), type(error.instance).__name__)
        return f"expected {error.validator_value}, found {kind}."
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = _allowed_keys(error)
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        return f"unknown key {', '.join(map(repr, extra))}; allowed keys: {', '.join(allowed)}."
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return message.rstrip(".") + "."
