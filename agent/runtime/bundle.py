"""Everything a worker needs to run one agent version, built once per process and version.

Versions are immutable, so the compiled policy, validators, resolved tools, planner and
mediator are cached by version id for the life of the process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from sqlalchemy.engine import Engine

from agent.mediation.circuit import CircuitBreakers
from agent.mediation.guards import (
    ArgumentsGuard,
    CircuitGuard,
    PolicyGuard,
    RateLimitGuard,
    ScopeGuard,
)
from agent.mediation.mediator import Mediator
from agent.mediation.policy import CompiledOutputChecks, CompiledPolicy
from agent.mediation.ratelimit import RateLimits, rate_limit_storage
from agent.planning import build_planner
from agent.planning.base import Planner
from agent.spec import VersionSpec
from agent.tools.base import Tool, ToolSpec
from agent.tools.registry import ToolRegistry, default_registry
from agent.tools.validation import validate_args
from storage.engine import read_session
from storage.models import Agent, AgentVersion

_lock = threading.Lock()
_bundles: dict[tuple[int, int], VersionBundle] = {}
_http_client: httpx.Client | None = None


def http_client() -> httpx.Client:
    """One pooled HTTP client per process for HTTP tools (timeouts are set per request)."""
    global _http_client  # noqa: PLW0603 - process-wide connection pool
    if _http_client is None:
        _http_client = httpx.Client(follow_redirects=False)
    return _http_client


@dataclass
class VersionBundle:
    version_id: int
    version_number: int
    agent_id: int
    agent_name: str
    spec: VersionSpec
    policy: CompiledPolicy
    output_checks: CompiledOutputChecks
    output_validator: Draft202012Validator
    tools: dict[str, Tool]
    tool_specs: dict[str, ToolSpec]
    planner: Planner
    mediator: Mediator
    breakers: CircuitBreakers
    registry: ToolRegistry

    def agent_variables(self) -> dict[str, Any]:
        return {"name": self.agent_name, "version": self.version_number}


def load_bundle(
    engine: Engine, version_id: int, registry: ToolRegistry | None = None
) -> VersionBundle:
    """The bundle of ``version_id``, cached per engine and version."""
    key = (id(engine), version_id)
    with _lock:
        bundle = _bundles.get(key)
    if bundle is not None:
        return bundle
    with read_session(engine) as session:
        version = session.get(AgentVersion, version_id)
        if version is None:
            raise LookupError(f"agent version {version_id} does not exist")
        agent = session.get(Agent, version.agent_id)
        agent_name = agent.name if agent else str(version.agent_id)
    bundle = build_bundle(
        engine,
        version_id=version_id,
        version_number=version.number,
        agent_id=version.agent_id,
        agent_name=agent_name,
        spec=VersionSpec.from_document(version.spec),
        registry=registry or default_registry(),
    )
    with _lock:
        return _bundles.setdefault(key, bundle)


def build_bundle(
    engine: Engine,
    *,
    version_id: int,
    version_number: int,
    agent_id: int,
    agent_name: str,
    spec: VersionSpec,
    registry: ToolRegistry,
) -> VersionBundle:
    tools = registry.resolve(spec, http_client())
    tool_specs = {name: tool.spec for name, tool in tools.items()}
    policy = CompiledPolicy(spec.policy)
    breakers = CircuitBreakers(engine, spec.circuit_breaker)
    mediator = Mediator(
        authorize=[
            ScopeGuard(tool_specs, spec.data_sources),
            ArgumentsGuard(tool_specs, validate_args),
            PolicyGuard(policy),
        ],
        admit=[
            RateLimitGuard(RateLimits(agent_name, spec.rate_limits, rate_limit_storage(engine))),
            CircuitGuard(breakers),
        ],
    )
    return VersionBundle(
        version_id=version_id,
        version_number=version_number,
        agent_id=agent_id,
        agent_name=agent_name,
        spec=spec,
        policy=policy,
        output_checks=CompiledOutputChecks(spec.output.checks),
        output_validator=Draft202012Validator(dict(spec.output.schema)),
        tools=tools,
        tool_specs=tool_specs,
        planner=build_planner(spec.planner),
        mediator=mediator,
        breakers=breakers,
        registry=registry,
    )


def clear_cache() -> None:
    """Forget every bundle (tests that swap registries use this)."""
    with _lock:
        _bundles.clear()
