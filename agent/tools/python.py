"""Python tools: a ``ToolSpec`` plus a plain function, and the ``@tool`` decorator pairing them."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from agent.errors import Health, ToolError
from agent.tools.base import ToolContext, ToolSpec
from storage.enums import SideEffect

ToolFunction = Callable[[Mapping[str, Any], ToolContext], dict[str, Any]]
"""The signature of a Python tool's function: validated arguments and the call's context in,
a JSON object out."""


class PythonTool:
    """A tool implemented by a Python function.

    Args:
        spec: what the tool is and how it is governed.
        fn: the implementation; it fails by raising ``ToolError`` (whose ``health`` says
            whether the failure is the service's or the input's) or ``ToolTimeout``.
    """

    def __init__(self, spec: ToolSpec, fn: ToolFunction) -> None:
        self._spec = spec
        self._fn = fn

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    def call(self, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Run the function once.

        Raises:
            ToolError: the function failed, or returned something other than a JSON object
                (a bug in the tool: not retryable, and no sign of an unhealthy service, since
                the function did answer).
        """
        result = self._fn(args, ctx)
        if not isinstance(result, dict):
            raise ToolError(
                f"tool {self._spec.name!r} returned {type(result).__name__}, not an object; "
                "fix the tool to return a dict",
                health=Health.HEALTHY,
            )
        return result

    def __repr__(self) -> str:
        return f"PythonTool({self._spec.name!r})"


def tool(
    name: str,
    *,
    args_schema: Mapping[str, Any],
    result_schema: Mapping[str, Any] | None = None,
    description: str | None = None,
    side_effect: SideEffect = SideEffect.READ,
    idempotent: bool = True,
    data_sources: tuple[str, ...] = (),
    compensating_tool: str | None = None,
    inline: bool = False,
    compensation_args: Mapping[str, str] | None = None,
    not_undoable_because: str = "",
) -> Callable[[ToolFunction], PythonTool]:
    """Turn a function into a ``PythonTool``.

    The description defaults to the function's docstring (its first paragraph), so the text
    the planner reads and the text a developer reads are the same.

    Example:
        >>> @tool("echo", args_schema={"type": "object"})
        ... def echo(args, ctx):
        ...     '''Return the arguments unchanged.'''
        ...     return dict(args)

    Args:
        name: the tool's name, as versions and planners refer to it.
        args_schema: JSON Schema of the arguments.
        result_schema: JSON Schema of the result (default: any object).
        description: what the tool does, for the planner.
        side_effect: read, write or irreversible.
        idempotent: whether repeating a call with the same idempotency key is harmless.
        data_sources: the systems the tool touches, for scope checks.
        compensating_tool: the tool that undoes this one, if any.
        inline: run in the worker's thread (see ``ToolSpec.inline``): only for fast tools
            that bound every wait themselves.
        compensation_args: the compensating call's arguments, each a CEL expression over
            ``args`` and ``result`` of the call it undoes (default: the same arguments).
        not_undoable_because: for a side-effecting tool with no compensating tool, why its
            calls cannot be undone.

    Returns:
        A decorator producing the ``PythonTool``.
    """

    def wrap(fn: ToolFunction) -> PythonTool:
        text = description
        if text is None:
            doc = inspect.getdoc(fn) or ""
            text = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
        spec = ToolSpec(
            name=name,
            description=text,
            args_schema=args_schema,
            result_schema=result_schema if result_schema is not None else {"type": "object"},
            side_effect=side_effect,
            idempotent=idempotent,
            data_sources=data_sources,
            compensating_tool=compensating_tool,
            inline=inline,
            compensation_args=dict(compensation_args or {}),
            not_undoable_because=not_undoable_because,
        )
        return PythonTool(spec, fn)

    return wrap
