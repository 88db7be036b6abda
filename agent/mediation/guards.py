"""The mediation stages before execution, each a small guard: call in, decision or pass out.

Order (DESIGN.md): scope, arguments, policy, then for allowed calls rate limit and circuit
breaker. A guard returns ``None``, or an allow decision naming its rule, to let the call
through to the next stage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agent.calls import ProposedCall
from agent.mediation.authorization import NO_AUTHORIZATION, Authorization
from agent.mediation.circuit import CircuitBreakers
from agent.mediation.decision import Decision
from agent.mediation.policy import CompiledPolicy
from agent.mediation.ratelimit import RateLimits
from agent.tools.base import ToolSpec
from storage.enums import ErrorClass

ArgsValidator = Callable[[ToolSpec, Any], list[str]]


Loader = Callable[[frozenset[str] | None], dict[str, Any]]
"""Loads the named facts or counters (None: all of them) for one call."""


def _nothing(names: frozenset[str] | None) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class CallContext:
    """What guards may look at besides the call.

    Attributes:
        variables: the decision's variables (``agent.mediation.variables``).
        load_facts: loads the facts the tool's rules read; run only when the policy stage is
            reached (earlier stages may already have refused the call, and facts cost queries).
        load_counters: loads the policy counters the tool's rules read, the same way.
        authorization: what people authorized for this call (nothing, for a new proposal).
    """

    variables: Mapping[str, Any]
    load_facts: Loader = _nothing
    load_counters: Loader = _nothing
    authorization: Authorization = NO_AUTHORIZATION


class Guard(Protocol):
    stage: str

    def check(self, call: ProposedCall, ctx: CallContext) -> Decision | None: ...


class ScopeGuard:
    """The tool is in the version's tool set and reads or writes only allowed data sources."""

    stage = "scope"

    def __init__(self, tools: Mapping[str, ToolSpec], data_sources: Sequence[str]) -> None:
        self.tools = tools
        self.data_sources = frozenset(data_sources)

    def check(self, call: ProposedCall, ctx: CallContext) -> Decision | None:
        spec = self.tools.get(call.tool)
        if spec is None:
            return Decision.deny(
                "scope",
                f"tool {call.tool!r} is not in this agent version's tool set",
                error_class=ErrorClass.OUT_OF_SCOPE,
                stage=self.stage,
            )
        outside = [s for s in spec.data_sources if s not in self.data_sources]
        if self.data_sources and outside:
            return Decision.deny(
                "scope",
                f"tool {call.tool!r} touches data sources outside this agent's scope: "
                f"{', '.join(outside)}",
                error_class=ErrorClass.OUT_OF_SCOPE,
                stage=self.stage,
            )
        return None


class ArgumentsGuard:
    """Arguments match the tool's JSON schema; bad ones go back to the planner, not the tool."""

    stage = "arguments"

    def __init__(self, tools: Mapping[str, ToolSpec], validate: ArgsValidator) -> None:
        self.tools = tools
        self.validate = validate

    def check(self, call: ProposedCall, ctx: CallContext) -> Decision | None:
        errors = self.validate(self.tools[call.tool], call.args)
        if errors:
            return Decision.deny(
                "arguments",
                "invalid arguments: " + "; ".join(errors[:5]),
                error_class=ErrorClass.INVALID_ARGUMENTS,
                stage=self.stage,
            )
        return None


class PolicyGuard:
    stage = "policy"

    def __init__(self, policy: CompiledPolicy) -> None:
        self.policy = policy

    def check(self, call: ProposedCall, ctx: CallContext) -> Decision | None:
        facts_needed = self.policy.facts_needed(call.tool)
        counters_needed = self.policy.counters_needed(call.tool)
        variables = {
            **ctx.variables,
            "facts": ctx.load_facts(facts_needed) if facts_needed != frozenset() else {},
            "counters": ctx.load_counters(counters_needed)
            if counters_needed != frozenset()
            else {},
        }
        return self.policy.evaluate(call.tool, variables, ctx.authorization)


class RateLimitGuard:
    stage = "rate_limit"

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits

    def check(self, call: ProposedCall, ctx: CallContext) -> Decision | None:
        exceeded = self.limits.hit(call.tool)
        if exceeded:
            return Decision.deny(
                "rate_limit",
                f"rate limit {exceeded} for {call.tool!r} reached",
                error_class=ErrorClass.RATE_LIMITED,
                stage=self.stage,
            )
        return None


class CircuitGuard:
    stage = "circuit"

    def __init__(self, breakers: CircuitBreakers) -> None:
        self.breakers = breakers

    def check(self, call: ProposedCall, ctx: CallContext) -> Decision | None:
        if not self.breakers.allow(call.tool):
            return Decision.deny(
                "circuit",
                f"the circuit for {call.tool!r} is open after repeated failures; failing fast",
                error_class=ErrorClass.CIRCUIT_OPEN,
                stage=self.stage,
            )
        return None
