"""What a person's decision is bound to: the exact arguments and the exact policy.

A review authorizes one call of one tool with these argument bytes under this policy; hashing
both the same way everywhere (the runtime, the review services, the ledger) is what lets a
decision be checked against the call that finally executes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from agent.spec import PolicySpec


def canonical_json(document: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces: the form of a document (a version, a suite) that is hashed, so
    YAML layout and comments do not count."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def content_hash(document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the document's canonical JSON: what an evaluation and an activation
    are bound to."""
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def args_hash(args: Any) -> str:
    """SHA-256 (hex) of the arguments' canonical JSON: what an approval is bound to."""
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def policy_hash(spec: PolicySpec) -> str:
    """SHA-256 (hex) of the policy's canonical JSON: the policy a decision was taken under."""
    document = json.dumps(asdict(spec), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(document.encode()).hexdigest()
