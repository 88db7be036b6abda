"""A stored agent version compiled once per process: what governance needs, without a runtime.

Services (review decisions, the queue's edit pane) and the run loop read the same
``CompiledVersion``: the typed spec, the compiled policy and output contract, and the specs of the
tools in scope. Building one needs the tool registry (to read registered tools' schemas) but no
planner, HTTP client or circuit breaker; the runtime's bundle wraps it with those.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from jsonschema.exceptions import SchemaError
from sqlalchemy.engine import Engine

from agent.calls import ProposedCall
from agent.errors import NotFound, VersionSpecError
from agent.mediation.authorization import NO_AUTHORIZATION, Authorization
from agent.mediation.counters import CompiledCounters, read_counters
from agent.mediation.guards import ArgumentsGuard, CallContext, PolicyGuard, ScopeGuard
from agent.mediation.mediator import Mediator
from agent.mediation.policy import CompiledOutputChecks, CompiledPolicy
from agent.mediation.variables import CallTally, RunFigures, decision_variables
from agent.spec import VersionSpec
from agent.tools.base import ToolSpec
from agent.tools.registry import FactRequest, ToolRegistry
from agent.tools.validation import compiled_validator, validate, validate_args
from storage.engine import read_session
from storage.models import Agent, AgentVersion
from storage.types import utcnow

log = logging.getLogger(__name__)


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
    counters: CompiledCounters
    output_checks: CompiledOutputChecks
    tool_specs: Mapping[str, ToolSpec]
    mediator: Mediator
    """The gate's authorization stages (scope, arguments, policy): what a run, a review's dry
    run of an edit, and a replay all decide calls with."""

    def agent_variables(self) -> dict[str, Any]:
        """What policy conditions see as ``agent``."""
        return {"name": self.agent_name, "version": self.number}

    def call_context(
        self,
        call: ProposedCall,
        *,
        engine: Engine,
        registry: ToolRegistry,
        task: Mapping[str, Any],
        figures: RunFigures,
        tally: CallTally,
        agent_id: int,
        authorization: Authorization = NO_AUTHORIZATION,
        connection: sa.Connection | None = None,
        facts: dict[str, Any] | None = None,
        records_engine: Engine | None = None,
        namespace: str | None = None,
    ) -> CallContext:
        """Everything the gate decides ``call`` on, built the same way for a run, a review's
        dry run and any other caller: the decision's variables from the run's figures and
        tally, fresh facts from the registry, and policy counters read on ``connection`` (whose
        keys the caller locked) or, without one, outside any transaction.

        ``facts``, when given, holds facts already read for this call and keeps those read now:
        deciding the same call again under a counter's lock need not read them twice (the lock
        makes the counters atomic, not the systems facts come from). Facts are read from
        ``records_engine`` (an evaluation's sandbox) when given, and counters are kept under
        ``namespace`` when given (an evaluation's own), else ``engine`` and the agent's.
        """
        args = dict(call.args) if isinstance(call.args, Mapping) else {}
        variables = decision_variables(args, task, figures, tally, self.agent_variables())

        def load_facts(names: frozenset[str] | None) -> dict[str, Any]:
            wanted = set(self.spec.policy.facts) if names is None else set(names)
            if facts is not None and wanted <= facts.keys():
                return {name: facts[name] for name in wanted}
            request = FactRequest(records_engine or engine, call.tool, args, task, figures.run_id)
            try:
                loaded = registry.facts_for(self.spec, request, only=names)
            except Exception:  # a fact that cannot be read leaves rules reading it to fail safe
                log.warning(
                    "facts for %s in run %s failed", call.tool, figures.run_id, exc_info=True
                )
                return {}
            if facts is not None:
                facts.update(loaded)
            return loaded

        def load_counters(names: frozenset[str] | None) -> dict[str, Any]:
            counters = self.counters.involved(call.tool, names)

            def read(on: sa.Connection) -> dict[str, Any]:
                return dict(
                    read_counters(
                        on,
                        counters,
                        variables,
                        agent_id=agent_id,
                        run_id=figures.run_id,
                        now=utcnow(),
                        namespace=namespace,
                    )
                )

            if connection is not None:
                return read(connection)
            with engine.connect() as outside:
                return read(outside)

        return CallContext(variables, load_facts, load_counters, authorization)

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
    try:
        compiled_validator(spec.output.schema)
    except SchemaError as exc:
        raise VersionSpecError(
            f"the output schema is not a valid JSON Schema: {exc.message}"
        ) from None
    assert row.id is not None
    policy = CompiledPolicy(spec.policy)
    tool_specs = registry.specs(spec)
    return CompiledVersion(
        version_id=row.id,
        number=row.number,
        agent_id=row.agent_id,
        agent_name=agent_name,
        content_hash=row.content_hash,
        spec=spec,
        policy=policy,
        counters=CompiledCounters(spec.policy.counters),
        output_checks=CompiledOutputChecks(spec.output.checks),
        tool_specs=tool_specs,
        mediator=Mediator(
            authorize=[
                ScopeGuard(tool_specs, spec.data_sources),
                ArgumentsGuard(tool_specs, validate_args),
                PolicyGuard(policy),
            ],
            admit=[],
        ),
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
