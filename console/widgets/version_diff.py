"""A readable diff of two versions: what changed section by section, then the YAML itself."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pandas as pd
import streamlit as st

from agent.versions import VersionDiff


def render_diff(diff: VersionDiff) -> None:
    """Changed settings, rules, tools and data sources as tables, and the YAML diff below."""
    if diff.identical:
        st.success(
            f"Versions {diff.a} and {diff.b} behave the same"
            + ("; only the YAML layout or comments differ." if diff.text else ".")
        )
    settings = changed_settings(diff)
    if not settings.empty:
        st.markdown("**Settings** (prompt, planner, policy, budgets)")
        st.dataframe(settings, hide_index=True, key="versions.diff_settings")
    rules = changed_rules(diff)
    if not rules.empty:
        st.markdown("**Policy rules**")
        st.dataframe(rules, hide_index=True, key="versions.diff_rules")
    lists = [
        ("Tools added", diff.tools_added),
        ("Tools removed", diff.tools_removed),
        ("Data sources added", diff.data_sources_added),
        ("Data sources removed", diff.data_sources_removed),
    ]
    for title, names in lists:
        if names:
            st.markdown(f"**{title}:** " + ", ".join(f"`{name}`" for name in names))
    if diff.text:
        with st.expander(f"YAML diff, v{diff.a} → v{diff.b}"):
            st.code(diff.text, language="diff")


def changed_settings(diff: VersionDiff) -> pd.DataFrame:
    """One row per changed setting: section, field, before, after."""
    rows = [
        {"section": section, "field": c.field, "before": shown(c.before), "after": shown(c.after)}
        for section, changes in (
            ("planner", diff.planner),
            ("policy", diff.policy),
            ("budgets", diff.budgets),
            ("other", diff.other),
        )
        for c in changes
    ]
    return pd.DataFrame(rows, columns=["section", "field", "before", "after"])


def changed_rules(diff: VersionDiff) -> pd.DataFrame:
    """One row per added, removed or changed policy rule."""
    rows = [{"rule": rule, "change": "added", "details": ""} for rule in diff.rules_added]
    rows += [{"rule": rule, "change": "removed", "details": ""} for rule in diff.rules_removed]
    rows += [
        {
            "rule": rule.rule_id,
            "change": "changed",
            "details": "; ".join(
                f"{c.field}: {shown(c.before)} → {shown(c.after)}" for c in rule.changes
            ),
        }
        for rule in diff.rules_changed
    ]
    return pd.DataFrame(rows, columns=["rule", "change", "details"])


def shown(value: Any, limit: int = 300) -> str:
    """A setting's value as short text (long prompts are cut, with an ellipsis)."""
    text = str(value.value if isinstance(value, Enum) else value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
