"""A policy replay's report: decisions that flip, human decisions it contradicts, and what it
would mean for the review queue; saved as JSON and read back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EXAMPLES = 5
"""Runs shown as examples of each flip."""


@dataclass(frozen=True)
class Flip:
    """Decisions that change the same way: from one effect to another, by one rule."""

    from_effect: str
    to_effect: str
    rule_id: str | None
    tool: str
    version: int
    count: int
    runs: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "runs": list(self.runs)}


FlipKey = tuple[str, str, str | None, str, int]
"""(from effect, to effect, rule, tool, version number) of a group of flips."""


def grouped_flips(groups: Mapping[FlipKey, list[int]]) -> tuple[Flip, ...]:
    """Flips from the runs of each group, largest first, each with a few runs as examples."""
    return tuple(
        sorted(
            (
                Flip(
                    from_effect=key[0],
                    to_effect=key[1],
                    rule_id=key[2],
                    tool=key[3],
                    version=key[4],
                    count=len(runs),
                    runs=tuple(sorted(set(runs)))[:EXAMPLES],
                )
                for key, runs in groups.items()
            ),
            key=lambda f: (-f.count, f.tool, f.from_effect, f.to_effect),
        )
    )


@dataclass(frozen=True)
class Contradiction:
    """A person's decision the candidate would go against."""

    run_id: int
    review_id: int
    tool: str
    person: str
    decided: str
    candidate: str
    rule_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ReplayReport:
    """What a candidate policy would have decided on an agent's recorded decisions."""

    agent: str
    candidate: str
    candidate_version: int | None
    candidate_policy_hash: str
    since: datetime
    until: datetime
    decisions: int
    replayed: int
    unchanged: int
    flips: tuple[Flip, ...]
    undecidable: dict[str, int]
    contradictions: tuple[Contradiction, ...]
    executed_now_denied: tuple[dict[str, Any], ...]
    queue: dict[str, Any]
    id: int | None = None
    created_by: str = ""
    created_at: datetime | None = None
    by_effect: dict[str, dict[str, int]] = field(default_factory=dict)
    refused_before_policy: int = 0

    @property
    def flipped(self) -> int:
        return sum(f.count for f in self.flips)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "candidate": self.candidate,
            "candidate_version": self.candidate_version,
            "candidate_policy_hash": self.candidate_policy_hash,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "decisions": self.decisions,
            "replayed": self.replayed,
            "unchanged": self.unchanged,
            "flipped": self.flipped,
            "flips": [f.as_dict() for f in self.flips],
            "undecidable": dict(self.undecidable),
            "contradictions": [c.as_dict() for c in self.contradictions],
            "executed_now_denied": list(self.executed_now_denied),
            "queue": dict(self.queue),
            "by_effect": {k: dict(v) for k, v in self.by_effect.items()},
            "refused_before_policy": self.refused_before_policy,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ReplayReport:
        return cls(
            agent=doc["agent"],
            candidate=doc["candidate"],
            candidate_version=doc.get("candidate_version"),
            candidate_policy_hash=doc["candidate_policy_hash"],
            since=datetime.fromisoformat(doc["since"]),
            until=datetime.fromisoformat(doc["until"]),
            decisions=int(doc["decisions"]),
            replayed=int(doc["replayed"]),
            unchanged=int(doc["unchanged"]),
            flips=tuple(Flip(**{**f, "runs": tuple(f["runs"])}) for f in doc.get("flips", ())),
            undecidable=dict(doc.get("undecidable", {})),
            contradictions=tuple(Contradiction(**c) for c in doc.get("contradictions", ())),
            executed_now_denied=tuple(doc.get("executed_now_denied", ())),
            queue=dict(doc.get("queue", {})),
            id=doc.get("id"),
            created_by=str(doc.get("created_by", "")),
            created_at=(
                datetime.fromisoformat(doc["created_at"]) if doc.get("created_at") else None
            ),
            by_effect={k: dict(v) for k, v in doc.get("by_effect", {}).items()},
            refused_before_policy=int(doc.get("refused_before_policy", 0)),
        )
