"""The one gate, as a run sees it: a call decided from the run's current state, writing nothing.

Every call a run executes (proposed, approved, edited, overridden, recovered) is decided here
with the version's mediator, the run's counters and tally as they are now, facts read fresh,
and what people authorized for that call. The policy counters a decision reads can be read on
the caller's transaction, after locking their keys, which is what makes a counted decision and
its reservation one atomic step.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from agent.calls import ProposedCall
from agent.mediation.authorization import NO_AUTHORIZATION, Authorization
from agent.mediation.counters import (
    CompiledCounter,
    CounterShare,
    CounterUnavailable,
)
from agent.mediation.mediator import GateResult
from agent.mediation.variables import decision_variables
from agent.platform import Platform
from agent.runtime.bundle import VersionBundle
from agent.runtime.state import RunState
from storage.queries.limits import lock_counter_keys
from storage.types import utcnow


class CallGate:
    """Scope, arguments, policy, rate limits and circuit breakers for one run's calls."""

    def __init__(self, platform: Platform, bundle: VersionBundle, state: RunState) -> None:
        self.platform = platform
        self.bundle = bundle
        self.version = bundle.version
        self.state = state
        sandbox = platform.sandbox
        # An evaluation's counters are its own: it neither reads nor fills production's limits.
        self.namespace = sandbox.namespace if sandbox is not None else None

    def authorize(
        self,
        call: ProposedCall,
        authorization: Authorization = NO_AUTHORIZATION,
        *,
        connection: sa.Connection | None = None,
        facts: dict[str, Any] | None = None,
    ) -> GateResult:
        """Whether ``call`` may happen at all: scope, arguments, then policy.

        Args:
            call: the call, as proposed or as a person edited it.
            authorization: what people authorized for it.
            connection: read policy counters on this transaction (whose keys the caller
                locked); without one they are read outside any transaction, which is enough
                for a decision that reserves nothing.
            facts: facts already read for this call, kept up to date (see
                ``CompiledVersion.call_context``).
        """
        context = self.version.call_context(
            call,
            engine=self.platform.engine,
            registry=self.platform.registry,
            task=self.state.task,
            figures=self.state.figures(),
            tally=self.state.tally,
            agent_id=self.state.agent_id,
            authorization=authorization,
            connection=connection,
            facts=facts,
            records_engine=self.platform.records_engine,
            namespace=self.namespace,
        )
        return self.bundle.mediator.authorize(call, context)

    def admit(self, call: ProposedCall) -> GateResult:
        """Whether ``call`` may happen now: rate limits, then the tool's circuit breaker."""
        return self.bundle.mediator.admit(call)

    def counters(self, call: ProposedCall) -> tuple[CompiledCounter, ...]:
        """The counters a decision on ``call`` reads or adds to: if any, the decision that lets
        it through must be taken again under their locks (``lock``), atomically with its
        reservation."""
        read = self.version.policy.counters_needed(call.tool)
        if not self.version.counters:
            return ()
        return self.version.counters.involved(call.tool, read)

    def lock(self, connection: sa.Connection, call: ProposedCall) -> list[CounterShare]:
        """Lock the keys of every counter ``call`` touches on ``connection`` and return the
        shares it reserves if it executes (counters it adds to that can be keyed)."""
        variables = self._variables(dict(call.args))
        now = utcnow()
        shares = []
        keys = []
        counting = {c.spec.id for c in self.version.counters.counting(call.tool)}
        for counter in self.counters(call):
            try:
                share = counter.share(
                    variables,
                    agent_id=self.state.agent_id,
                    run_id=self.state.run_id,
                    now=now,
                    namespace=self.namespace,
                )
            except CounterUnavailable:
                continue  # the decision reading it fails safe; nothing to reserve
            keys.append(share.key)
            if counter.spec.id in counting:
                shares.append(share)
        lock_counter_keys(connection, keys)
        return shares

    def _variables(self, args: dict[str, Any]) -> dict[str, Any]:
        return decision_variables(
            args,
            self.state.task,
            self.state.figures(),
            self.state.tally,
            self.version.agent_variables(),
        )
