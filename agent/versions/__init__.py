"""Versions as code: an agent version is YAML, validated, compiled, content-hashed and immutable.

Modules:
    document    validate a document (schema, cross-references, rate limits, CEL) and hash it
    agents      agents: create and list; release settings (who may override the gate)
    service     versions: create, list, show, activate through the gate, roll back (audited)
    pinned      open reviews still pinned to inactive versions
    rows        row look-ups and their read models
    diff        what changed between two versions
    cache       the runtime's per-version ``VersionSpec`` cache
    models      the read models these functions return
"""

from __future__ import annotations

from agent.binding import canonical_json, content_hash
from agent.versions.agents import (
    create_agent,
    list_agents,
    release_settings,
    set_release_settings,
)
from agent.versions.cache import clear_spec_cache, load_spec
from agent.versions.diff import FieldChange, RuleChange, VersionDiff, diff_versions
from agent.versions.document import ParsedVersion, load_version_document, parse_version
from agent.versions.models import (
    AgentInfo,
    DeploymentInfo,
    PinnedReview,
    PinnedReviews,
    ReleaseSettings,
    VersionDetail,
    VersionInfo,
)
from agent.versions.pinned import pinned_reviews
from agent.versions.service import (
    activate_version,
    active_version,
    create_version,
    deployment_history,
    list_versions,
    rollback,
    rollback_target,
    show_version,
)

__all__ = [
    "AgentInfo",
    "DeploymentInfo",
    "FieldChange",
    "ParsedVersion",
    "PinnedReview",
    "PinnedReviews",
    "ReleaseSettings",
    "RuleChange",
    "VersionDetail",
    "VersionDiff",
    "VersionInfo",
    "activate_version",
    "active_version",
    "canonical_json",
    "clear_spec_cache",
    "content_hash",
    "create_agent",
    "create_version",
    "deployment_history",
    "diff_versions",
    "list_agents",
    "list_versions",
    "load_spec",
    "load_version_document",
    "parse_version",
    "pinned_reviews",
    "release_settings",
    "rollback",
    "rollback_target",
    "set_release_settings",
    "show_version",
]
