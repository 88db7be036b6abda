"""Policy as code: rules with CEL conditions, compiled once per version, most restrictive wins.

Conditions see ``args`` (the proposed call's arguments), ``task`` (the task input), ``run``
(what this run has done so far), ``agent`` (name and version) and ``facts`` (values the version
asks for from registered fact providers, such as refunds already issued today). CEL is used
because it is side-effect free and terminates; ``eval`` is never used.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import cel

from agent.errors import VersionSpecError
from agent.mediation.cel_names import check_functions
from agent.mediation.decision import Decision, Effect
from agent.spec import OutputCheck, PolicyRuleSpec, PolicySpec
from storage.enums import ErrorClass

_POSITION = re.compile(r"<input>:(\d+):(\d+)")
DEFAULT_RULE_ID = "default"


def compile_expression(source: str, *, what: str, rule_id: str | None = None) -> cel.Program:
    """Compile one CEL expression or raise ``VersionSpecError`` naming where it fails."""
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        message = str(exc)
        match = _POSITION.search(message)
        detail = message.split("ERROR:", 1)[-1].strip().splitlines()[0]
        detail = _POSITION.sub("", detail).strip(" :")
        where = f" at column {match.group(2)}" if match else ""
        raise VersionSpecError(
            f"{what} {source!r} does not compile{where}: {detail}", rule_id=rule_id
        ) from None
    check_functions(program, what=what, rule_id=rule_id)
    return program


@dataclass(frozen=True)
class CompiledRule:
    spec: PolicyRuleSpec
    program: cel.Program

    def applies_to(self, tool: str) -> bool:
        return fnmatch.fnmatchcase(tool, self.spec.tool)


class CompiledPolicy:
    """A version's policy, ready to decide calls in microseconds."""

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec
        self.rules = tuple(
            CompiledRule(rule, compile_expression(rule.when, what="condition", rule_id=rule.id))
            for rule in spec.rules
        )
        self.hash = policy_hash(spec)
        self._rules_by_tool: dict[str, tuple[CompiledRule, ...]] = {}
        self._facts_by_tool: dict[str, object] = {}
        self._variables_by_tool: dict[str, object] = {}

    def facts_needed(self, tool: str) -> frozenset[str] | None:
        """The facts the conditions of ``tool``'s rules read; None when that cannot be told
        (an expression uses ``facts`` as a whole), so all of them must be loaded.

        Facts can cost a query each; most calls (lookups, say) need none of them.
        """
        cached = self._facts_by_tool.get(tool, _UNKNOWN)
        if cached is _UNKNOWN:
            names: set[str] = set()
            for rule in self.rules_for(tool):
                used = referenced_facts(rule.spec.when)
                if used is None:
                    names = set(self.spec.facts)
                    break
                names |= used
            cached = frozenset(names)
            self._facts_by_tool[tool] = cached
        return cached  # type: ignore[return-value]

    def variables_needed(self, tool: str) -> frozenset[str]:
        """The top-level variables (``args``, ``task``, ...) ``tool``'s conditions name."""
        cached = self._variables_by_tool.get(tool, _UNKNOWN)
        if cached is _UNKNOWN:
            names: set[str] = set()
            for rule in self.rules_for(tool):
                names |= set(_IDENTIFIER.findall(rule.spec.when))
            cached = frozenset(names)
            self._variables_by_tool[tool] = cached
        return cached  # type: ignore[return-value]

    def rules_for(self, tool: str) -> tuple[CompiledRule, ...]:
        cached = self._rules_by_tool.get(tool)
        if cached is None:
            cached = tuple(r for r in self.rules if r.applies_to(tool))
            self._rules_by_tool[tool] = cached
        return cached

    def evaluate(self, tool: str, variables: Mapping[str, Any]) -> Decision:
        """Decide one call: the most restrictive matching rule, else the default effect.

        A condition that cannot be evaluated (a missing field, a type error) fails safe: an
        allow rule becomes an escalation to a person, an escalate or deny rule still applies.
        """
        # Converting values for CEL is most of an evaluation's cost: pass only the variables
        # the tool's rules name.
        needed = self.variables_needed(tool)
        context = cel.Context(
            dict(variables)
            if needed is None
            else {k: v for k, v in variables.items() if k in needed}
        )
        winner: PolicyRuleSpec | None = None
        winner_effect = Effect.ALLOW
        failure = ""
        for rule in self.rules_for(tool):
            try:
                matched = rule.program.execute(context)
            except Exception as exc:  # noqa: BLE001 - the CEL runtime raises several kinds
                matched, error = True, f"{type(exc).__name__}: {exc}"
            else:
                error = "" if isinstance(matched, bool) else "condition did not yield true/false"
                matched = matched is True or bool(error)
            if not matched:
                continue
            effect = rule.spec.effect
            if error and effect is Effect.ALLOW:
                effect = Effect.ESCALATE
            if winner is None or effect.severity > winner_effect.severity:
                winner, winner_effect, failure = rule.spec, effect, error
        if winner is None:
            return _default_decision(self.spec.default)
        reason = winner.reason
        if failure:
            reason = f"{reason} (condition could not be evaluated: {failure})"
        if winner_effect is Effect.DENY:
            return Decision.deny(winner.id, reason, override_roles=winner.override_roles)
        if winner_effect is Effect.ESCALATE:
            return Decision.escalate(
                winner.id,
                reason,
                sla_minutes=winner.sla_minutes,
                on_expiry=winner.on_expiry,
                max_tier=winner.max_tier,
            )
        return Decision.allow(winner.id, reason)


_UNKNOWN = object()
# Every identifier in an expression; a superset of the variables it reads is all that matters.
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_FACTS_WORD = re.compile(r"\bfacts\b")
_FACT_ACCESS = re.compile(r"""facts(?:\s*\.\s*([A-Za-z_]\w*)|\s*\[\s*["']([^"']+)["']\s*\])""")


def referenced_facts(expression: str) -> set[str] | None:
    """The fact names ``expression`` reads as ``facts.name`` or ``facts["name"]``; None when it
    also uses ``facts`` some other way (then every fact may matter)."""
    accesses = list(_FACT_ACCESS.finditer(expression))
    if len(accesses) != len(_FACTS_WORD.findall(expression)):
        return None
    return {m.group(1) or m.group(2) for m in accesses}


def _default_decision(effect: Effect) -> Decision:
    reason = "no rule matched; the policy's default applies"
    if effect is Effect.DENY:
        return Decision.deny(DEFAULT_RULE_ID, reason, error_class=ErrorClass.POLICY_DENIED)
    if effect is Effect.ESCALATE:
        return Decision.escalate(DEFAULT_RULE_ID, reason)
    return Decision.allow(DEFAULT_RULE_ID, reason)


def policy_hash(spec: PolicySpec) -> str:
    """SHA-256 of the policy's canonical JSON: what a review's authorization is bound to."""
    document = json.dumps(asdict(spec), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(document.encode()).hexdigest()


class CompiledOutputChecks:
    """The output contract's CEL checks over ``output`` and ``task``."""

    def __init__(self, checks: tuple[OutputCheck, ...]) -> None:
        self.checks = tuple(
            (check, compile_expression(check.expr, what=f"output check {check.id!r}"))
            for check in checks
        )

    def failures(self, output: Mapping[str, Any], task: Mapping[str, Any]) -> list[str]:
        """Messages of the checks that do not hold (an evaluation error counts as failing)."""
        context = cel.Context({"output": dict(output), "task": dict(task)})
        failed = []
        for check, program in self.checks:
            try:
                ok = program.execute(context) is True
            except Exception:  # noqa: BLE001 - any evaluation error fails the check
                ok = False
            if not ok:
                failed.append(f"{check.id}: {check.message}")
        return failed
