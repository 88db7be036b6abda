"""The neutral vocabulary of a governed call, read by planning, mediation, tools and the runtime.

A planner proposes ``ProposedCall``s; the policy answers with an ``Effect``; what came back for a
call is an ``Observation``. Nothing here knows how a call is planned, decided or executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from storage.enums import ErrorClass


@dataclass(frozen=True)
class ProposedCall:
    """One tool call a planner proposes. ``call_id`` is unique within the run."""

    call_id: str
    tool: str
    args: Mapping[str, Any]


class Effect(StrEnum):
    """Policy effects, ordered from least to most restrictive."""

    ALLOW = "allow"
    ESCALATE = "escalate"
    DENY = "deny"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Effect.ALLOW: 0, Effect.ESCALATE: 1, Effect.DENY: 2}


@dataclass(frozen=True)
class Observation:
    """What came back for one proposed call, as the planner will see it.

    ``status`` is one of: ``ok`` (result in ``content``), ``error`` (tool or validation failure),
    ``denied`` (policy), ``pending_review`` (waiting for a person), ``rejected`` (a person said no;
    ``content['reason']``), ``expired``.
    """

    call_id: str
    tool: str
    status: str
    content: Mapping[str, Any]
    error_class: ErrorClass | None = None

    def as_text(self) -> str:
        """A short line for a prompt or a log: 'denied by rule X: reason', a result summary..."""
        if self.status == "ok":
            return f"{self.tool} succeeded: {dict(self.content)}"
        reason = self.content.get("message") or self.content.get("reason") or ""
        return f"{self.tool} {self.status}: {reason}".strip()
