"""The tools and policy facts this installation offers to agent versions.

Steward itself ships no business tools: each domain registers its own into a ``ToolRegistry``.
Today the one installed domain is the demo (customer support and IT access); the console and the
CLI build the registry here once and pass it down through the ``Platform``.
"""

from __future__ import annotations

from agent import demo
from agent.tools.registry import ToolRegistry


def installed_registry() -> ToolRegistry:
    """A new registry holding every installed domain's tools and facts."""
    registry = ToolRegistry()
    demo.register(registry)
    return registry
