"""What changed between two versions of an agent, section by section, plus the YAML text diff.

Sections are compared on their effective values (defaults filled in by ``VersionSpec``), so
removing ``max_steps: 60`` when 60 is the default is no change, while removing ``max_steps: 40``
shows 40 -> 60.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from agent.actors import READ_ROLES, Actor, require
from agent.platform import Platform
from agent.spec import VersionSpec
from agent.versions.service import show_version


@dataclass(frozen=True)
class FieldChange:
    """One setting that differs: its name, and its value before and after."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class RuleChange:
    """A policy rule present in both versions whose fields differ."""

    rule_id: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class VersionDiff:
    """The differences from version ``a`` to version ``b`` of one agent."""

    agent: str
    a: int
    b: int
    planner: tuple[FieldChange, ...]
    policy: tuple[FieldChange, ...]
    rules_added: tuple[str, ...]
    rules_removed: tuple[str, ...]
    rules_changed: tuple[RuleChange, ...]
    tools_added: tuple[str, ...]
    tools_removed: tuple[str, ...]
    data_sources_added: tuple[str, ...]
    data_sources_removed: tuple[str, ...]
    budgets: tuple[FieldChange, ...]
    other: tuple[FieldChange, ...]
    text: str

    @property
    def identical(self) -> bool:
        """True when the two versions behave the same (the YAML may still differ in layout)."""
        return not any(
            (
                self.planner,
                self.policy,
                self.rules_added,
                self.rules_removed,
                self.rules_changed,
                self.tools_added,
                self.tools_removed,
                self.data_sources_added,
                self.data_sources_removed,
                self.budgets,
                self.other,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


def diff_versions(platform: Platform, actor: Actor, agent_name: str, a: int, b: int) -> VersionDiff:
    """Compare version ``a`` (before) with version ``b`` (after) of an agent.

    Raises:
        NotFound: no such agent or version.
    """
    require(actor, READ_ROLES, f"compare versions of {agent_name!r}")
    # Versions are immutable: reading the two in separate transactions compares the same rows.
    before = show_version(platform, actor, agent_name, a)
    after = show_version(platform, actor, agent_name, b)
    old = VersionSpec.from_document(before.document)
    new = VersionSpec.from_document(after.document)
    old_rules = {rule.id: asdict(rule) for rule in old.policy.rules}
    new_rules = {rule.id: asdict(rule) for rule in new.policy.rules}
    text = "".join(
        difflib.unified_diff(
            before.source_yaml.splitlines(keepends=True),
            after.source_yaml.splitlines(keepends=True),
            fromfile=f"{agent_name} v{a}",
            tofile=f"{agent_name} v{b}",
        )
    )
    return VersionDiff(
        agent=agent_name,
        a=a,
        b=b,
        planner=compare_fields(asdict(old.planner), asdict(new.planner)),
        policy=compare_fields(
            {"default": old.policy.default, "facts": old.policy.facts},
            {"default": new.policy.default, "facts": new.policy.facts},
        ),
        rules_added=tuple(rule for rule in new_rules if rule not in old_rules),
        rules_removed=tuple(rule for rule in old_rules if rule not in new_rules),
        rules_changed=tuple(
            RuleChange(rule, changes)
            for rule in new_rules
            if rule in old_rules and (changes := compare_fields(old_rules[rule], new_rules[rule]))
        ),
        tools_added=_added(old.tool_names, new.tool_names),
        tools_removed=_added(new.tool_names, old.tool_names),
        data_sources_added=_added(old.data_sources, new.data_sources),
        data_sources_removed=_added(new.data_sources, old.data_sources),
        budgets=compare_fields(asdict(old.budgets), asdict(new.budgets)),
        other=compare_fields(_other_sections(old), _other_sections(new)),
        text=text,
    )


def compare_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """The keys whose values differ between two mappings, in sorted order."""
    return tuple(
        FieldChange(key, before.get(key), after.get(key))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    )


def _added(before: tuple[str, ...], after: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for name in after if name not in before)


def _other_sections(spec: VersionSpec) -> dict[str, Any]:
    return {
        "description": spec.description,
        "http_tools": {tool.name: asdict(tool) for tool in spec.http_tools},
        "rate_limits": [asdict(limit) for limit in spec.rate_limits],
        "retries": asdict(spec.retries),
        "circuit_breaker": asdict(spec.circuit_breaker),
        "output": asdict(spec.output),
    }
