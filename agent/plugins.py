"""The tools and policy facts this installation offers to agent versions, found as plugins.

Steward ships no business tools: a package offers tools, fact providers and sandbox fixtures by
declaring an entry point in the ``steward.tools`` group whose object is a function taking the
``ToolRegistry``::

    [project.entry-points."steward.tools"]
    acme = "acme_steward:register"

The demo (customer support and IT access) is such a plugin, declared by Steward's own
``pyproject.toml``; nothing here names it. ``STEWARD_PLUGINS`` narrows what loads: a
comma-separated list of entry point names (``STEWARD_PLUGINS=acme`` leaves the demo out; ``none``
loads nothing). Each tool and fact remembers the plugin that registered it, which ``steward
tools list`` shows. A plugin that fails to load is reported, not half-registered: what it added
before failing is taken back, and the other plugins load.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from agent.errors import InvalidInput
from agent.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

GROUP = "steward.tools"
PLUGINS_VARIABLE = "STEWARD_PLUGINS"


@dataclass(frozen=True)
class PluginLoad:
    """One entry point of the ``steward.tools`` group, and what became of it.

    Attributes:
        name: the entry point's name.
        target: what it points at (``module:function``).
        distribution: the package that declares it, with its version.
        loaded: whether it registered (False: skipped by ``STEWARD_PLUGINS``, or failed).
        error: why it failed, one sentence (None when it loaded or was skipped).
    """

    name: str
    target: str
    distribution: str
    loaded: bool
    error: str | None = None

    @property
    def origin(self) -> str:
        return f"{self.name} ({self.distribution})"


def installed_registry() -> ToolRegistry:
    """A new registry holding what every installed (and enabled) plugin registers."""
    registry, _ = load_plugins()
    return registry


def load_plugins(
    registry: ToolRegistry | None = None, *, enabled: str | None = None
) -> tuple[ToolRegistry, tuple[PluginLoad, ...]]:
    """Load the ``steward.tools`` plugins into ``registry`` (a new one by default).

    Args:
        registry: where the plugins register.
        enabled: the ``STEWARD_PLUGINS`` value to apply (by default, the environment's).

    Returns:
        The registry, and what became of each installed plugin, by name.

    Raises:
        InvalidInput: ``STEWARD_PLUGINS`` names a plugin that is not installed.
    """
    registry = registry if registry is not None else ToolRegistry()
    found = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
    wanted = _enabled(enabled if enabled is not None else os.environ.get(PLUGINS_VARIABLE))
    if wanted is not None:
        unknown = sorted(wanted - {ep.name for ep in found})
        if unknown:
            installed = ", ".join(ep.name for ep in found) or "none"
            raise InvalidInput(
                f"{PLUGINS_VARIABLE} names {', '.join(unknown)}, which no installed package "
                f"offers; installed plugins: {installed}."
            )
    loads = []
    for entry in found:
        if wanted is not None and entry.name not in wanted:
            loads.append(_load_record(entry, loaded=False))
            continue
        loads.append(_load(registry, entry))
    return registry, tuple(loads)


def _load(registry: ToolRegistry, entry: EntryPoint) -> PluginLoad:
    record = _load_record(entry, loaded=True)
    try:
        register: Callable[[ToolRegistry], None] = entry.load()
        if not callable(register):
            raise TypeError(f"{entry.value} is not a function taking the tool registry")
        with registry.registering(record.origin):
            register(registry)
    except Exception as exc:
        log.error("plugin %s (%s) failed to load: %s", entry.name, entry.value, exc, exc_info=exc)
        return _load_record(entry, loaded=False, error=f"{type(exc).__name__}: {exc}")
    return record


def _load_record(entry: EntryPoint, *, loaded: bool, error: str | None = None) -> PluginLoad:
    dist = entry.dist
    distribution = f"{dist.name} {dist.version}" if dist is not None else "unknown package"
    return PluginLoad(entry.name, entry.value, distribution, loaded, error)


def _enabled(value: str | None) -> frozenset[str] | None:
    """The plugin names ``STEWARD_PLUGINS`` enables; None: every installed one."""
    if value is None or not value.strip():
        return None
    names = frozenset(part.strip() for part in value.split(",") if part.strip())
    return frozenset() if names == {"none"} else names


@dataclass(frozen=True)
class Catalogue:
    """What the installed plugins offer: each plugin's load, every tool with its origin,
    schemas and side-effect class, every fact with the inputs it trusts, every fixture."""

    plugins: tuple[PluginLoad, ...]
    tools: tuple[dict[str, Any], ...]
    facts: tuple[dict[str, Any], ...]
    fixtures: tuple[dict[str, str], ...]

    @property
    def failed(self) -> tuple[PluginLoad, ...]:
        return tuple(p for p in self.plugins if p.error is not None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "plugins": [{**p.__dict__, "origin": p.origin} for p in self.plugins],
            "tools": list(self.tools),
            "facts": list(self.facts),
            "fixtures": list(self.fixtures),
        }


def catalogue(*, enabled: str | None = None) -> Catalogue:
    """The installed catalogue, loaded afresh (``steward tools list``).

    Raises:
        InvalidInput: ``STEWARD_PLUGINS`` names a plugin that is not installed.
    """
    registry, loads = load_plugins(enabled=enabled)
    tools = []
    for name in registry.tool_names:
        spec = registry.tool(name).spec
        tools.append(
            {
                "name": name,
                "origin": registry.origin("tool", name),
                "description": spec.description,
                "side_effect": spec.side_effect.value,
                "idempotent": spec.idempotent,
                "data_sources": list(spec.data_sources),
                "compensating_tool": spec.compensating_tool,
                "args_schema": dict(spec.args_schema),
                "result_schema": dict(spec.result_schema),
            }
        )
    facts = [
        {
            "name": name,
            "origin": registry.origin("fact", name),
            "inputs": list(registry.fact_inputs(name)),
        }
        for name in registry.fact_names
    ]
    fixtures = [
        {"name": name, "origin": registry.origin("fixture", name)}
        for name in registry.fixture_names
    ]
    return Catalogue(loads, tuple(tools), tuple(facts), tuple(fixtures))
