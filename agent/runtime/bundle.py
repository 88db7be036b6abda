"""Everything a worker needs to run one agent version, built once per processor and version.

A ``VersionBundle`` wraps the ``CompiledVersion`` services also read (spec, policy, output
contract, tool specs) with what only a run needs: the callable tools, the planner, the rate
limits and circuit breakers, and the mediator that composes the gate's stages.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from agent.compiled import CompiledVersion
from agent.mediation.circuit import CircuitBreakers
from agent.mediation.guards import CircuitGuard, RateLimitGuard
from agent.mediation.mediator import Mediator
from agent.mediation.ratelimit import RateLimits
from agent.planning import build_planner
from agent.planning.base import Planner
from agent.platform import Platform
from agent.tools.base import Tool


@dataclass(frozen=True)
class VersionBundle:
    """A compiled version with its tools, planner, breakers and mediator."""

    version: CompiledVersion
    tools: dict[str, Tool]
    planner: Planner
    mediator: Mediator
    breakers: CircuitBreakers


def build_bundle(platform: Platform, version: CompiledVersion) -> VersionBundle:
    """Resolve the version's tools against the platform's registry and compose its gate."""
    spec = version.spec
    sandbox = platform.sandbox
    tools = platform.registry.resolve(
        spec,
        platform.http,
        sandbox=sandbox.http if sandbox is not None else None,
        mcp=platform.mcp if sandbox is None else None,
    )
    # An evaluation trips breakers in its sandbox, never the ones production calls go through.
    breakers = CircuitBreakers(platform.records_engine, spec.circuit_breaker)
    mediator = version.mediator.with_admission(
        [
            RateLimitGuard(
                RateLimits(version.agent_name, spec.rate_limits, platform.rate_limit_store)
            ),
            CircuitGuard(breakers),
        ]
    )
    return VersionBundle(
        version=version,
        tools=tools,
        planner=build_planner(spec.planner, http=platform.http),
        mediator=mediator,
        breakers=breakers,
    )


class BundleCache:
    """The bundles one run processor has built, by version id (versions never change)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._lock = threading.Lock()
        self._bundles: dict[int, VersionBundle] = {}

    def get(self, version_id: int) -> VersionBundle:
        """The bundle of ``version_id``, built on first use.

        Raises:
            NotFound: no such version.
            VersionSpecError: it names a tool or fact this installation does not offer.
        """
        with self._lock:
            bundle = self._bundles.get(version_id)
        if bundle is not None:
            return bundle
        built = build_bundle(self.platform, self.platform.versions.get(version_id))
        with self._lock:
            return self._bundles.setdefault(version_id, built)
