"""The compensating call's arguments, derived from the call it undoes.

A tool declares ``compensation_args``: for each argument of its compensating tool, a CEL
expression over ``args`` (the original call's arguments) and ``result`` (what it returned).
CEL, as for policy conditions, because it is side-effect free and terminates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cel

from agent.errors import InvalidInput, VersionSpecError
from agent.mediation.policy import compile_expression
from agent.tools.base import ToolSpec

UNDO_KEY = "steward_undo"
"""The key of an undo task's input that carries its compensating call (reserved: a task
submitted any other way may not use it)."""

UNDO_CALL_ID = "undo"
"""The call id of the compensating call in its undo run."""


def compensating_args(
    spec: ToolSpec, call_id: int, args: Mapping[str, Any], result: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The arguments of ``spec``'s compensating call for call ``call_id``.

    Raises:
        InvalidInput: an expression does not compile, or cannot be evaluated on this call (a
            field its result lacks, say); the message names the argument.
    """
    if not spec.compensation_args:
        return dict(args)
    context = cel.Context({"args": dict(args), "result": dict(result or {})})
    derived: dict[str, Any] = {}
    for name, expression in spec.compensation_args.items():
        try:
            program = compile_expression(expression, what=f"compensation argument {name!r}")
            derived[name] = _plain(program.execute(context))
        except VersionSpecError as exc:
            raise InvalidInput(f"{spec.name} declares an undo that cannot run: {exc}.") from exc
        except Exception as exc:  # the CEL runtime raises several kinds
            raise InvalidInput(
                f"the argument {name!r} of {spec.compensating_tool} cannot be derived from "
                f"call {call_id} ({type(exc).__name__}: {exc})."
            ) from exc
    return derived


def _plain(value: Any) -> Any:
    """A CEL value as plain JSON data."""
    if isinstance(value, bool | str | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)
