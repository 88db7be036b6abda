"""A stored agent version compiled once per process: what governance needs, without a runtime.

Services (review decisions, the queue's edit pane) and the run loop read the same
``CompiledVersion``: the typed spec, the compiled policy and output contract, and the specs of the
tools in scope. Building one needs the tool registry (to read registered tools' schemas) but no
planner, HTTP client or circuit breaker; the runtime's bundle wraps it with those.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from agent.errors import NotFound
from agent.mediation.policy import CompiledOutputChecks, CompiledPolicy
from agent.spec import VersionSpec
from agent.tools.base import ToolSpec
from agent.tools.registry import ToolRegistry
from agent.tools.validation import validate
from storage.engine import read_session
from storage.models import Agent, AgentVersion


@dataclass(frozen=True)
class CompiledVersion:
    """One immutable agent version, ready to decide and check calls and answers."""

    version_id: int
    number: int
    agent_id: int
    agent_name: str
    content_hash: str
    spec: VersionSpec
    policy: CompiledPolicy
    output_checks: CompiledOutputChecks
    tool_specs: Mapping[str, ToolSpec]

    def agent_variables(self) -> dict[str, Any]:
        """What policy conditions see as ``agent``."""
        return {"name": self.agent_name, "version": self.number}

    def output_problems(self, answer: Any, task: Mapping[str, Any]) -> list[str]:
        """Why ``answer`` breaks the output contract (schema first, then the CEL checks); empty
        when it meets it."""
        problems = validate(self.spec.output.schema, answer, root="output", what="output contract")
        if problems or not isinstance(answer, Mapping):
            return problems or ["output: the answer is not a JSON object"]
        return self.output_checks.failures(answer, task)


def compile_version(
    row: AgentVersion, agent_name: str, registry: ToolRegistry, spec: VersionSpec | None = None
) -> CompiledVersion:
    """Compile a stored version against ``registry``.

    Raises:
        VersionSpecError: the version names a tool or fact this registry does not offer.
    """
    spec = spec or VersionSpec.from_document(row.spec)
    registry.check_facts(spec)
    assert row.id is not None
    return CompiledVersion(
        version_id=row.id,
        number=row.number,
        agent_id=row.agent_id,
        agent_name=agent_name,
        content_hash=row.content_hash,
        spec=spec,
        policy=CompiledPolicy(spec.policy),
        output_checks=CompiledOutputChecks(spec.output.checks),
        tool_specs=registry.specs(spec),
    )


class VersionCatalog:
    """Compiled versions of one database, built on first use and kept (versions never change)."""

    def __init__(self, engine: Engine, registry: ToolRegistry) -> None:
        self.engine = engine
        self.registry = registry
        self._lock = threading.Lock()
        self._compiled: dict[int, CompiledVersion] = {}

    def get(self, version_id: int) -> CompiledVersion:
        """The compiled version ``version_id``.

        Raises:
            NotFound: no such version.
            VersionSpecError: it names a tool or fact this installation does not offer.
        """
        with self._lock:
            found = self._compiled.get(version_id)
        if found is not None:
            return found
        with read_session(self.engine) as session:
            row = session.get(AgentVersion, version_id)
            if row is None:
                raise NotFound(f"agent version {version_id} does not exist.")
            agent = session.get(Agent, row.agent_id)
            agent_name = agent.name if agent is not None else str(row.agent_id)
        compiled = compile_version(row, agent_name, self.registry)
        with self._lock:
            return self._compiled.setdefault(version_id, compiled)

    def clear(self) -> None:
        """Forget every compiled version (tests that rebuild a database under the same ids)."""
        with self._lock:
            self._compiled.clear()
