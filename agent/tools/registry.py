"""The catalogue of Python tools and fact providers, and how a version's tool scope is resolved.

Tools and facts are registered in code once per process; a version names which of them it uses
(``tools``, ``policy.facts``) and may define its own declarative HTTP tools and pin tools of MCP
servers. ``resolve`` turns a
version into the exact set of tools its runs may call, and ``facts_for`` computes the values its
policy conditions read as ``facts.<name>``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agent.errors import NotFound, VersionSpecError
from agent.spec import VersionSpec
from agent.tools.base import Tool, ToolSpec
from agent.tools.http import HttpTool, UnboundTool, http_tool_spec, sandboxed_definition
from agent.tools.mcp.connections import McpConnections
from agent.tools.mcp.tool import McpTool, mcp_tool_spec

logger = logging.getLogger(__name__)


_INPUT = re.compile(r"^(task|args)\.([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class FactRequest:
    """One proposed call's look-up of policy facts.

    Attributes:
        engine: the database holding the systems of record.
        tool: the name of the tool being called.
        args: the proposed call's arguments (untrusted: a planner wrote them).
        task: the task input (what the person or system that submitted the task asked for).
        run_id: the run proposing the call.
    """

    engine: Engine
    tool: str
    args: Mapping[str, Any]
    task: Mapping[str, Any] = field(default_factory=dict)
    run_id: int = 0

    def value(self, name: str) -> Any:
        """The value at ``task.<field>`` or ``args.<field>``, None when absent."""
        match = _INPUT.match(name)
        if match is None:
            raise ValueError(f"{name!r} is not task.<field> or args.<field>")
        source = self.task if match.group(1) == "task" else self.args
        return source.get(match.group(2))


@dataclass(frozen=True)
class FactContext:
    """What one fact provider sees: the inputs it declared, and nothing else of the call.

    A fact is what a rule trusts, so a provider says which inputs it reads: the task's own
    subject (``task.customer_id``) or the object the call names (``args.order_id``, to look up
    whose order it is). A provider that took a customer id from the arguments could be fooled
    by a planner naming another customer; declaring inputs makes that choice visible.

    Attributes:
        engine: the database holding the systems of record.
        tool: the name of the tool being called.
        run_id: the run proposing the call.
        inputs: the declared inputs' values, by name (``"task.customer_id"``).
    """

    engine: Engine
    tool: str
    run_id: int
    inputs: Mapping[str, Any]
    connect: Callable[[], sa.Connection] | None = None

    def connection(self) -> sa.Connection:
        """A read connection shared by the facts of this call (do not close it)."""
        if self.connect is None:
            raise RuntimeError("this fact context has no connection; give it an engine")
        return self.connect()

    def value(self, name: str) -> Any:
        """The value of a declared input (None when the task or call does not have it).

        Raises:
            KeyError: ``name`` is not one of the provider's declared inputs.
        """
        return self.inputs[name]


FactFunction = Callable[[FactContext], Any]
"""Computes one fact for one proposed call; returns None when the fact does not apply."""


@dataclass(frozen=True)
class FactProvider:
    """A registered fact: how it is computed, and the inputs it trusts."""

    compute: FactFunction
    inputs: tuple[str, ...]

    def context(
        self, request: FactRequest, connect: Callable[[], sa.Connection] | None = None
    ) -> FactContext:
        inputs = {name: request.value(name) for name in self.inputs}
        return FactContext(request.engine, request.tool, request.run_id, inputs, connect)


Fixture = Callable[[Engine], None]
"""Creates and fills a sandbox's systems of record (their tables and seed rows) for an
evaluation, on the sandbox's engine."""


class ToolRegistry:
    """Python tools, fact providers and sandbox fixtures, by name."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._facts: dict[str, FactProvider] = {}
        self._fixtures: dict[str, Fixture] = {}
        self._origins: dict[tuple[str, str], str] = {}
        self._origin = "registered in code"

    @contextmanager
    def registering(self, origin: str) -> Iterator[None]:
        """Record ``origin`` (a plugin) as the source of what is registered in the block; if
        the block raises, take back everything it registered, so a failing plugin leaves
        nothing half-registered."""
        before = (dict(self._tools), dict(self._facts), dict(self._fixtures), dict(self._origins))
        previous, self._origin = self._origin, origin
        try:
            yield
        except BaseException:
            self._tools, self._facts, self._fixtures, self._origins = before
            raise
        finally:
            self._origin = previous

    def origin(self, kind: str, name: str) -> str:
        """Where the ``kind`` (``tool``, ``fact`` or ``fixture``) called ``name`` came from."""
        return self._origins.get((kind, name), "registered in code")

    def register_tool(self, tool: Tool) -> None:
        """Add a tool under its spec's name.

        Raises:
            ValueError: a tool with that name is already registered.
        """
        name = tool.spec.name
        if name in self._tools:
            raise ValueError(
                f"a tool named {name!r} is already registered ({self.origin('tool', name)})"
            )
        self._tools[name] = tool
        self._origins[("tool", name)] = self._origin

    def register_fact(self, name: str, fn: FactFunction, *, inputs: Sequence[str]) -> None:
        """Add a fact provider that policies can name in ``policy.facts``.

        Args:
            name: the fact's name (``facts.<name>`` in conditions).
            fn: computes it from a ``FactContext``.
            inputs: what it reads of the call: ``task.<field>`` and ``args.<field>`` names.

        Raises:
            ValueError: a fact with that name is already registered, or an input is not
                ``task.<field>`` or ``args.<field>``.
        """
        if name in self._facts:
            raise ValueError(
                f"a fact named {name!r} is already registered ({self.origin('fact', name)})"
            )
        for item in inputs:
            if _INPUT.match(item) is None:
                raise ValueError(
                    f"fact {name!r}: input {item!r} is not task.<field> or args.<field>"
                )
        self._facts[name] = FactProvider(fn, tuple(inputs))
        self._origins[("fact", name)] = self._origin

    def fact_inputs(self, name: str) -> tuple[str, ...]:
        """The inputs the fact ``name`` declared it reads.

        Raises:
            NotFound: no such fact is registered.
        """
        provider = self._facts.get(name)
        if provider is None:
            raise NotFound(f"no fact named {name!r} is registered")
        return provider.inputs

    def register_fixture(self, name: str, fixture: Fixture) -> None:
        """Add a sandbox fixture that evaluation suites can name in ``fixtures``.

        Raises:
            ValueError: a fixture with that name is already registered.
        """
        if name in self._fixtures:
            raise ValueError(f"a fixture named {name!r} is already registered")
        self._fixtures[name] = fixture
        self._origins[("fixture", name)] = self._origin

    def fixture(self, name: str) -> Fixture:
        """The sandbox fixture called ``name``.

        Raises:
            NotFound: no such fixture is registered.
        """
        try:
            return self._fixtures[name]
        except KeyError:
            raise NotFound(
                f"no sandbox fixture named {name!r} is registered; known fixtures: "
                f"{_listing(self._fixtures)}"
            ) from None

    @property
    def fixture_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._fixtures))

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

    def resolve(
        self,
        spec: VersionSpec,
        client: httpx.Client,
        *,
        sandbox: Mapping[str, str] | None = None,
        mcp: McpConnections | None = None,
    ) -> dict[str, Tool]:
        """The tools a version's runs may call, by name.

        A version's own ``http_tools`` definition takes precedence over a registered tool of
        the same name, since the version states it explicitly.

        Args:
            spec: the version.
            client: the HTTP client its HTTP tools share.
            sandbox: for an evaluation, the base URL each HTTP tool is bound to instead of its
                own; an HTTP tool with no binding refuses every call (it would reach
                production), and so does every MCP tool (its server is production's).
            mcp: the process's MCP connections, which the version's MCP tools call through
                (required when the version pins MCP tools, outside an evaluation).

        Raises:
            VersionSpecError: a name in ``tools`` is neither registered nor an HTTP tool of the
                version.
        """
        http = {defn.name: defn for defn in spec.http_tools}
        pinned = {pin.name: (server, pin) for server, pin in spec.mcp_tools}
        self._check_tools(spec, {**http, **pinned})
        resolved: dict[str, Tool] = {}
        for name in spec.tool_names:
            defn = http.get(name)
            if name in pinned:
                server, pin = pinned[name]
                if sandbox is not None or mcp is None:
                    resolved[name] = UnboundTool(
                        mcp_tool_spec(server, pin),
                        reason=f"{name} is a tool of the MCP server {server.name}, which an "
                        "evaluation does not call (it would reach production); test it with a "
                        "Python or HTTP tool bound to a sandbox",
                    )
                else:
                    resolved[name] = McpTool(server, pin, mcp)
            elif defn is None:
                resolved[name] = self._tools[name]
            elif sandbox is None:
                resolved[name] = HttpTool(defn, client)
            elif name in sandbox:
                resolved[name] = HttpTool(sandboxed_definition(defn, sandbox[name]), client)
            else:
                resolved[name] = UnboundTool(http_tool_spec(defn))
        return resolved

    def specs(self, spec: VersionSpec) -> dict[str, ToolSpec]:
        """The specs of the tools a version's runs may call, by name, without building them
        (what services need to read argument schemas and side-effect classes).

        Raises:
            VersionSpecError: as ``resolve``.
        """
        http = {defn.name: defn for defn in spec.http_tools}
        pinned = {pin.name: (server, pin) for server, pin in spec.mcp_tools}
        self._check_tools(spec, {**http, **pinned})
        specs: dict[str, ToolSpec] = {}
        for name in spec.tool_names:
            if name in pinned:
                specs[name] = mcp_tool_spec(*pinned[name])
            elif name in http:
                specs[name] = http_tool_spec(http[name])
            else:
                specs[name] = self._tools[name].spec
        return specs

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
        self, spec: VersionSpec, request: FactRequest, *, only: Collection[str] | None = None
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
        with _SharedConnection(request.engine) as shared:
            for name in spec.policy.facts:
                if only is not None and name not in only:
                    continue
                provider = self._facts[name]
                try:
                    facts[name] = provider.compute(provider.context(request, shared.get))
                except Exception:
                    logger.exception(
                        "fact provider %r failed for tool %s in run %d; rules reading it fail safe",
                        name,
                        request.tool,
                        request.run_id,
                    )
        return facts


class _SharedConnection:
    """One read connection for the facts of one call, opened when a provider first asks: the
    facts of a call are read on the policy path of every call, and a connection per fact costs
    more than its query."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: sa.Connection | None = None

    def get(self) -> sa.Connection:
        if self.connection is None:
            self.connection = self.engine.connect()
        return self.connection

    def __enter__(self) -> _SharedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.connection is not None:
            self.connection.close()


def _listing(names: Mapping[str, object]) -> str:
    return ", ".join(sorted(names)) or "(none)"
