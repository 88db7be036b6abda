"""The catalogue of Python tools and fact providers, and how a version's tool scope is resolved.

Tools and facts are registered in code once per process; a version names which of them it uses
(``tools``, ``policy.facts``) and may define its own declarative HTTP tools. ``resolve`` turns a
version into the exact set of tools its runs may call, and ``facts_for`` computes the values its
policy conditions read as ``facts.<name>``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from agent.errors import NotFound, VersionSpecError
from agent.spec import VersionSpec
from agent.tools.base import Tool, ToolSpec
from agent.tools.http import HttpTool, http_tool_spec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FactContext:
    """What a fact provider may look at: the proposed call, its task and run, the database.

    Attributes:
        engine: the database holding the systems of record.
        tool: the name of the tool being called.
        args: the proposed call's arguments (not yet executed).
        task: the task input.
        run_id: the run proposing the call.
    """

    engine: Engine
    tool: str
    args: Mapping[str, Any]
    task: Mapping[str, Any] = field(default_factory=dict)
    run_id: int = 0

    def arg_or_task(self, name: str) -> Any:
        """``args[name]`` if the call has it, else ``task[name]``, else None."""
        value = self.args.get(name)
        return self.task.get(name) if value is None else value


FactProvider = Callable[[FactContext], Any]
"""Computes one fact for one proposed call; returns None when the fact does not apply."""


class ToolRegistry:
    """Python tools and fact providers, by name."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._facts: dict[str, FactProvider] = {}

    def register_tool(self, tool: Tool) -> None:
        """Add a tool under its spec's name.

        Raises:
            ValueError: a tool with that name is already registered.
        """
        name = tool.spec.name
        if name in self._tools:
            raise ValueError(f"a tool named {name!r} is already registered")
        self._tools[name] = tool

    def register_fact(self, name: str, fn: FactProvider) -> None:
        """Add a fact provider that policies can name in ``policy.facts``.

        Raises:
            ValueError: a fact with that name is already registered.
        """
        if name in self._facts:
            raise ValueError(f"a fact named {name!r} is already registered")
        self._facts[name] = fn

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._tools))

    @property
    def fact_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._facts))

    def tool(self, name: str) -> Tool:
        """The registered tool called ``name``.

        Raises:
            NotFound: no such tool is registered.
        """
        try:
            return self._tools[name]
        except KeyError:
            raise NotFound(
                f"no tool named {name!r} is registered; known tools: {_listing(self._tools)}"
            ) from None

    def resolve(self, spec: VersionSpec, client: httpx.Client) -> dict[str, Tool]:
        """The tools a version's runs may call, by name.

        A version's own ``http_tools`` definition takes precedence over a registered tool of
        the same name, since the version states it explicitly.

        Args:
            spec: the version.
            client: the HTTP client its HTTP tools share.

        Raises:
            VersionSpecError: a name in ``tools`` is neither registered nor an HTTP tool of the
                version.
        """
        http = {defn.name: defn for defn in spec.http_tools}
        self._check_tools(spec, http)
        resolved: dict[str, Tool] = {}
        for name in spec.tool_names:
            defn = http.get(name)
            resolved[name] = HttpTool(defn, client) if defn is not None else self._tools[name]
        return resolved

    def specs(self, spec: VersionSpec) -> dict[str, ToolSpec]:
        """The specs of the tools a version's runs may call, by name, without building them
        (what services need to read argument schemas and side-effect classes).

        Raises:
            VersionSpecError: as ``resolve``.
        """
        http = {defn.name: defn for defn in spec.http_tools}
        self._check_tools(spec, http)
        return {
            name: http_tool_spec(http[name]) if name in http else self._tools[name].spec
            for name in spec.tool_names
        }

    def _check_tools(self, spec: VersionSpec, http: Mapping[str, object]) -> None:
        unknown = [n for n in spec.tools if n not in http and n not in self._tools]
        if unknown:
            raise VersionSpecError(
                f"the version names tools that are not registered and not defined in "
                f"http_tools: {', '.join(repr(n) for n in unknown)}; registered tools: "
                f"{_listing(self._tools)}"
            )

    def check_facts(self, spec: VersionSpec) -> None:
        """Fail early if the version's policy names a fact nobody provides.

        Raises:
            VersionSpecError: naming the unknown facts and the registered ones.
        """
        unknown = [name for name in spec.policy.facts if name not in self._facts]
        if unknown:
            raise VersionSpecError(
                f"the policy names facts that are not registered: "
                f"{', '.join(repr(n) for n in unknown)}; registered facts: {_listing(self._facts)}"
            )

    def facts_for(
        self, spec: VersionSpec, ctx: FactContext, *, only: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Compute the facts the version's policy names (or just ``only`` of them) for one call.

        A provider that raises is logged and its fact left out, so every rule that reads it
        cannot be evaluated and fails safe (deny and escalate rules apply, allow rules
        escalate) instead of the call slipping through.

        Raises:
            VersionSpecError: the policy names a fact that is not registered.
        """
        self.check_facts(spec)
        facts: dict[str, Any] = {}
        for name in spec.policy.facts:
            if only is not None and name not in only:
                continue
            try:
                facts[name] = self._facts[name](ctx)
            except Exception:
                logger.exception(
                    "fact provider %r failed for tool %s in run %d; rules reading it fail safe",
                    name,
                    ctx.tool,
                    ctx.run_id,
                )
        return facts


def _listing(names: Mapping[str, object]) -> str:
    return ", ".join(sorted(names)) or "(none)"
