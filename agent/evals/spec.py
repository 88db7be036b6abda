"""An evaluation suite as code: the JSON Schema of its YAML document and the typed model of it.

A suite holds cases. A case is a task ``input`` with ``tags`` (``normal``, ``edge``,
``security``, or your own) and what must come of it (``expect``): the outcome, the trajectory of
tool calls, what governance decided, what the systems of record hold afterwards, and limits.
A ``reviewer`` answers the reviews the case meets, through the real review service, so the
human path runs offline. ``fixtures`` names the sandbox the cases run against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_DECISIONS = ("allow", "escalate", "deny")
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}
_MATCHER = {
    "description": "a value (matched exactly) or an object with one of the matcher keys",
    "anyOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "equals": {},
                "tolerance": {"type": "number", "minimum": 0},
                "pattern": {"type": "string"},
                "any": {"const": True},
                "schema": {"type": "object"},
                "cel": {"type": "string", "minLength": 1},
            },
        },
        {"not": {"type": "object"}},
    ],
}
_CALL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tool"],
    "properties": {
        "tool": {"type": "string", "minLength": 1},
        "args": {"type": "object", "additionalProperties": _MATCHER},
    },
}
_ANSWER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["decision"],
    "properties": {
        "tool": {"type": "string", "minLength": 1},
        "rule": {"type": "string", "minLength": 1},
        "decision": {"enum": ["approve", "edit", "reject", "override", "expire"]},
        "args": {"type": "object"},
        "reason": {"type": "string"},
        "as": {"enum": ["operator", "manager"]},
    },
}
_ROWS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table"],
    "properties": {
        "table": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
        "where": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        },
        "count": {"type": "integer", "minimum": 0},
    },
}

CASE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "input", "expect"],
    "properties": {
        "name": _NAME,
        "description": {"type": "string"},
        "tags": {"type": "array", "items": _NAME, "uniqueItems": True},
        "input": {"type": "object", "minProperties": 1},
        "repeat": {"type": "integer", "minimum": 1, "maximum": 20},
        "shortest_path": {"type": "integer", "minimum": 0},
        "reviewer": {"type": "array", "items": _ANSWER},
        "expect": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "status": {
                    "enum": ["succeeded", "failed", "escalated", "waiting_review", "cancelled"]
                },
                "resolution": {"type": "string"},
                "error_class": {"type": ["string", "null"]},
                "output": {"type": "object", "additionalProperties": _MATCHER},
                "output_schema": {"type": "object"},
                "output_cel": {"type": "string", "minLength": 1},
                "trajectory": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["calls"],
                    "properties": {
                        "match": {"enum": ["exact", "in_order", "any_order", "subset"]},
                        "calls": {"type": "array", "items": _CALL},
                    },
                },
                "governance": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "decisions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["tool", "decision"],
                                "properties": {
                                    "tool": {"type": "string", "minLength": 1},
                                    "decision": {
                                        "description": "one decision, or a list of acceptable ones",
                                        "anyOf": [
                                            {"enum": list(_DECISIONS)},
                                            {
                                                "type": "array",
                                                "minItems": 1,
                                                "uniqueItems": True,
                                                "items": {"enum": list(_DECISIONS)},
                                            },
                                        ],
                                    },
                                    "rule": {"type": "string", "minLength": 1},
                                },
                            },
                        },
                        "never": {"type": "array", "items": {"type": "string", "minLength": 1}},
                        # Calls the gate must never allow outright: proposing one is fine, as
                        # long as a person sees it (escalate) or the gate refuses it (deny).
                        "not_allowed": {"type": "array", "items": _CALL},
                        "unauthorized_attempts": {"type": "integer", "minimum": 0},
                    },
                },
                "side_effects": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "must": {"type": "array", "items": _ROWS},
                        "must_not": {"type": "array", "items": _ROWS},
                    },
                },
                "limits": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "steps": {"type": "integer", "minimum": 1},
                        "latency_ms": {"type": "number", "exclusiveMinimum": 0},
                        "tokens": {"type": "integer", "minimum": 0},
                        "cost_usd": {"type": "number", "minimum": 0},
                    },
                },
            },
        },
    },
}

SUITE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Steward evaluation suite",
    "type": "object",
    "additionalProperties": False,
    "required": ["cases"],
    "properties": {
        "description": {"type": "string"},
        "required": {"type": "boolean"},
        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
        "schedule": {"type": "string", "minLength": 9},
        "fixtures": {"type": "string", "minLength": 1},
        "sandbox": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "http": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "pattern": "^https?://"},
                }
            },
        },
        "reviewer": {"type": "array", "items": _ANSWER},
        "cases": {"type": "array", "minItems": 1, "items": CASE_SCHEMA},
    },
}


@dataclass(frozen=True)
class ReviewerAnswer:
    """How the scripted reviewer answers a review: the first answer whose ``tool`` and ``rule``
    (when given) match the review is used, once, in order; the suite's answers come after the
    case's. ``as`` is the role the answer is given with (a manager for an override)."""

    decision: str
    tool: str | None = None
    rule: str | None = None
    args: Mapping[str, Any] | None = None
    reason: str = ""
    role: str = "operator"

    def matches(self, tool: str | None, rule: str | None) -> bool:
        return (self.tool is None or self.tool == tool) and (self.rule is None or self.rule == rule)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> ReviewerAnswer:
        return cls(
            decision=str(doc["decision"]),
            tool=doc.get("tool"),
            rule=doc.get("rule"),
            args=doc.get("args"),
            reason=str(doc.get("reason", "")),
            role=str(doc.get("as", "manager" if doc["decision"] == "override" else "operator")),
        )


@dataclass(frozen=True)
class CaseSpec:
    """One case: a task, what must come of it, and how its reviews are answered."""

    name: str
    input: Mapping[str, Any]
    expect: Mapping[str, Any]
    tags: tuple[str, ...] = ()
    repeat: int = 1
    shortest_path: int | None = None
    reviewer: tuple[ReviewerAnswer, ...] = ()
    description: str = ""

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> CaseSpec:
        return cls(
            name=str(doc["name"]),
            input=dict(doc["input"]),
            expect=dict(doc["expect"]),
            tags=tuple(doc.get("tags", ())),
            repeat=int(doc.get("repeat", 1)),
            shortest_path=doc.get("shortest_path"),
            reviewer=tuple(ReviewerAnswer.from_document(a) for a in doc.get("reviewer", ())),
            description=str(doc.get("description", "")),
        )


@dataclass(frozen=True)
class SuiteSpec:
    """A validated suite document. Build it with ``SuiteSpec.from_document``."""

    cases: tuple[CaseSpec, ...]
    description: str = ""
    required: bool = False
    threshold: float = 1.0
    schedule: str | None = None
    fixtures: str | None = None
    http_sandbox: Mapping[str, str] = field(default_factory=dict)
    reviewer: tuple[ReviewerAnswer, ...] = ()

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> SuiteSpec:
        """Build from a document that already passed ``SUITE_SCHEMA``."""
        return cls(
            cases=tuple(CaseSpec.from_document(c) for c in doc["cases"]),
            description=str(doc.get("description", "")),
            required=bool(doc.get("required", False)),
            threshold=float(doc.get("threshold", 1.0)),
            schedule=doc.get("schedule"),
            fixtures=doc.get("fixtures"),
            http_sandbox=dict(doc.get("sandbox", {}).get("http", {})),
            reviewer=tuple(ReviewerAnswer.from_document(a) for a in doc.get("reviewer", ())),
        )
