"""Checks of tool arguments and results against a ``ToolSpec``'s JSON schemas.

Validators are compiled once per distinct schema (keyed by its canonical JSON) and reused, so
the mediation layer can validate every call without recompiling. Errors come back as readable
lines, ``"args.amount: -5 is less than the minimum of 0"``, sorted by path.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from agent.errors import InvalidInput
from agent.tools.base import ToolSpec

_MAX_MESSAGE = 300


def validate_args(spec: ToolSpec, args: Any) -> list[str]:
    """Problems with a call's arguments, as ``"args.<path>: <message>"`` lines; empty if valid.

    Raises:
        InvalidInput: the tool's own argument schema is not a valid JSON Schema.
    """
    return validate(spec.args_schema, args, root="args", what=f"tool {spec.name!r} arguments")


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
        raise InvalidInput(f"{what}: the JSON schema is invalid: {exc.message}") from None
    problems = []
    for error in validator.iter_errors(instance):
        path = _render_path(root, error.absolute_path)
        message = error.message
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        problems.append(f"{path}: {message}")
    return sorted(problems)


def compiled_validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    """The cached validator for ``schema``: equal schemas share one compiled validator.

    Raises:
        jsonschema.exceptions.SchemaError: ``schema`` is not a valid JSON Schema.
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


_IDENTITY_CACHE_SIZE = 4096
_by_identity: dict[int, tuple[Mapping[str, Any], Draft202012Validator]] = {}


@functools.lru_cache(maxsize=512)
def _compile(canonical_schema: str) -> Draft202012Validator:
    schema = json.loads(canonical_schema)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _render_path(root: str, parts: Any) -> str:
    rendered = root
    for part in parts:
        rendered += f"[{part}]" if isinstance(part, int) else f".{part}"
    return rendered
