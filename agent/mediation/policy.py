"""Policy as code: rules with CEL conditions, compiled once per version, most restrictive wins.

Conditions see ``args`` (the proposed call's arguments), ``task`` (the task input), ``run``
(what this run has done so far), ``agent`` (name and version) and ``facts`` (values the version
asks for from registered fact providers, such as refunds already issued today). CEL is used
because it is side-effect free and terminates; ``eval`` is never used.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

from agent.binding import policy_hash
from agent.calls import Effect
from agent.errors import VersionSpecError
from agent.mediation.authorization import NO_AUTHORIZATION, Authorization
from agent.mediation.cel_names import check_functions
from agent.mediation.decision import Decision
from agent.spec import OutputCheck, PolicyRuleSpec, PolicySpec

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
        for rule in spec.rules:
            if rule.approvals > 1 and rule.effect is not Effect.ESCALATE:
                raise VersionSpecError(
                    f"rule {rule.id!r} asks for {rule.approvals} approvals but its effect is "
                    f"{rule.effect.value}; only an escalate rule raises a review people approve.",
                    rule_id=rule.id,
                )
        self.spec = spec
        self.rules = tuple(
            CompiledRule(rule, compile_expression(rule.when, what="condition", rule_id=rule.id))
            for rule in spec.rules
        )
        self.hash = policy_hash(spec)
        self._rules_by_tool: dict[str, tuple[CompiledRule, ...]] = {}
        self._names_by_tool: dict[tuple[str, str], frozenset[str] | None] = {}
        self._variables_by_tool: dict[str, frozenset[str]] = {}
        self._shadow_by_tool: dict[str, bool] = {}

    def facts_needed(self, tool: str) -> frozenset[str] | None:
        """The facts the conditions of ``tool``'s rules read; None when that cannot be told
        (an expression uses ``facts`` as a whole), so all of them must be loaded.

        Facts can cost a query each; most calls (lookups, say) need none of them.
        """
        return self.names_read(tool, "facts")

    def counters_needed(self, tool: str) -> frozenset[str] | None:
        """The counters the conditions of ``tool``'s rules read (None: all of them)."""
        return self.names_read(tool, "counters")

    def names_read(self, tool: str, variable: str) -> frozenset[str] | None:
        """The keys of map ``variable`` (``task``, ``run``, ``facts``...) that ``tool``'s
        conditions read; None when one uses the map as a whole."""
        key = (tool, variable)
        if key not in self._names_by_tool:
            names: set[str] = set()
            every = False
            for rule in self.rules_for(tool):
                used = referenced_names(rule.spec.when, variable)
                if used is None:
                    every = True
                    break
                names |= used
            self._names_by_tool[key] = None if every else frozenset(names)
        return self._names_by_tool[key]

    def variables_needed(self, tool: str) -> frozenset[str]:
        """The top-level variables (``args``, ``task``, ...) ``tool``'s conditions name."""
        cached = self._variables_by_tool.get(tool)
        if cached is None:
            names: set[str] = set()
            for rule in self.rules_for(tool):
                names |= set(_IDENTIFIER.findall(rule.spec.when))
            cached = self._variables_by_tool[tool] = frozenset(names)
        return cached

    def rules_for(self, tool: str) -> tuple[CompiledRule, ...]:
        cached = self._rules_by_tool.get(tool)
        if cached is None:
            cached = tuple(r for r in self.rules if r.applies_to(tool))
            self._rules_by_tool[tool] = cached
        return cached

    def evaluate(
        self,
        tool: str,
        variables: Mapping[str, Any],
        authorization: Authorization = NO_AUTHORIZATION,
    ) -> Decision:
        """Decide one call: the most restrictive matching rule, else the default effect.

        A condition that cannot be evaluated (a missing field, a type error) fails safe: an
        allow rule becomes an escalation to a person, an escalate or deny rule still applies.
        Rules ``authorization`` covers (an escalation a person approved, a deny a permitted role
        overrode) are set aside; if nothing else stands against the call, it is allowed on that
        authorization.
        """
        # Converting values for CEL is most of an evaluation's cost: pass only the variables
        # the tool's rules name, and of the task (which holds free text) only the fields they
        # read.
        needed = self.variables_needed(tool)
        values = {k: v for k, v in variables.items() if k in needed}
        task_fields = self.names_read(tool, "task")
        task = values.get("task")
        if task_fields is not None and isinstance(task, Mapping):
            values["task"] = {k: task[k] for k in task_fields if k in task}
        context = cel.Context(values)
        matched: list[_Match] = []
        shadow: list[_Match] = []
        for rule in self.rules_for(tool):
            try:
                outcome = rule.program.execute(context)
            except Exception as exc:  # noqa: BLE001 - the CEL runtime raises several kinds
                error = f"{type(exc).__name__}: {exc}"
            else:
                if outcome is False:
                    continue
                error = "" if outcome is True else "condition did not yield true/false"
            effect = rule.spec.effect
            if error and effect is Effect.ALLOW:
                effect = Effect.ESCALATE
            (shadow if rule.spec.shadow else matched).append(_Match(rule.spec, effect, error))
        would_match = matched + shadow
        if not matched:
            matched.append(_Match(_default_rule(self.spec.default), self.spec.default, ""))
        decision = self._decide(matched, authorization)
        # What the decision read, which rules matched and what it decided, so it can be
        # understood and replayed later from the trace alone. (``details`` is the decision's
        # own dict, made with it.)
        record: dict[str, Any] = {
            "policy_hash": self.hash,
            "effect": decision.effect.value,
            "rule_id": decision.rule_id,
            "read": values,
            "matched": [m.as_dict() for m in matched],
        }
        decision.details["policy"] = record
        if self._has_shadow(tool):
            # Shadow rules are evaluated on live traffic and recorded, never enforced: what the
            # policy would have decided with them.
            if not would_match:
                would_match = [_Match(_default_rule(self.spec.default), self.spec.default, "")]
            would = self._decide(would_match, authorization)
            record["shadow"] = {
                "effect": would.effect.value,
                "rule_id": would.rule_id,
                "matched": [m.as_dict() for m in shadow],
            }
        return decision

    def _has_shadow(self, tool: str) -> bool:
        found = self._shadow_by_tool.get(tool)
        if found is None:
            found = self._shadow_by_tool[tool] = any(r.spec.shadow for r in self.rules_for(tool))
        return found

    @staticmethod
    def _decide(matched: list[_Match], authorization: Authorization) -> Decision:
        standing = [m for m in matched if not authorization.covers(m.rule.id, m.effect)]
        if not standing:
            covered = matched[0].rule
            return Decision(
                Effect.ALLOW,
                covered.id,
                f"{covered.reason} ({authorization.describe()})",
                details={"authorization": authorization.as_dict()},
            )
        winner = max(standing, key=lambda m: m.effect.severity)  # the first of the most severe
        reason = winner.rule.reason
        if winner.error:
            reason = f"{reason} (condition could not be evaluated: {winner.error})"
        if winner.effect is Effect.DENY:
            return Decision.deny(winner.rule.id, reason, override_roles=winner.rule.override_roles)
        if winner.effect is Effect.ESCALATE:
            return Decision.escalate(
                winner.rule.id,
                reason,
                sla_minutes=winner.rule.sla_minutes,
                on_expiry=winner.rule.on_expiry,
                max_tier=winner.rule.max_tier,
                approvals=winner.rule.approvals,
            )
        return Decision.allow(winner.rule.id, reason)


@dataclass(frozen=True)
class _Match:
    rule: PolicyRuleSpec
    effect: Effect
    error: str

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"rule_id": self.rule.id, "effect": self.effect.value}
        if self.error:
            found["error"] = self.error
        return found


# Every identifier in an expression; a superset of the variables it reads is all that matters.
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def referenced_names(expression: str, variable: str) -> set[str] | None:
    """The keys of map ``variable`` that ``expression`` reads as ``variable.name`` or
    ``variable["name"]``; None when it also uses the map some other way (then every key may
    matter)."""
    word = re.compile(rf"\b{variable}\b")
    access = re.compile(
        rf"""\b{variable}(?:\s*\.\s*([A-Za-z_]\w*)|\s*\[\s*["']([^"']+)["']\s*\])"""
    )
    accesses = list(access.finditer(expression))
    if len(accesses) != len(word.findall(expression)):
        return None
    return {m.group(1) or m.group(2) for m in accesses}


def referenced_facts(expression: str) -> set[str] | None:
    """The fact names ``expression`` reads (see ``referenced_names``)."""
    return referenced_names(expression, "facts")


def _default_rule(effect: Effect) -> PolicyRuleSpec:
    return PolicyRuleSpec(DEFAULT_RULE_ID, effect, "no rule matched; the policy's default applies")


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
