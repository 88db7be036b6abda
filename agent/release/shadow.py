"""Shadow rules on live traffic: what the policy would have decided with them, next to what it
decided.

A rule marked ``shadow: true`` is evaluated with the live rules on every call and recorded in the
decision's trace step (``policy.shadow``), never enforced. This reads those records back: how
many of the version's decisions the shadow rules would change, grouped like a replay's flips,
with runs as examples. Promoting shadow rules is a new version without the flag, through the
activation gate like any other.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.actors import READ_ROLES, Actor, require
from agent.errors import InvalidInput
from agent.platform import Platform
from agent.release.history import recorded_decisions
from agent.release.report import Flip, FlipKey, grouped_flips
from agent.versions.rows import agent_row, version_row
from storage.engine import read_session
from storage.types import utcnow

MAX_WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class ShadowReport:
    """What an agent's shadow rules would have changed in a window."""

    agent: str
    version: int | None
    since: datetime
    until: datetime
    decisions: int
    unchanged: int
    flips: tuple[Flip, ...]
    rule_matches: dict[str, int]

    @property
    def flipped(self) -> int:
        return sum(f.count for f in self.flips)

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "version": self.version,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "decisions": self.decisions,
            "unchanged": self.unchanged,
            "flipped": self.flipped,
            "flips": [f.as_dict() for f in self.flips],
            "rule_matches": dict(self.rule_matches),
        }


def shadow_report(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    version: int | None = None,
    since: timedelta = timedelta(days=7),
    now: datetime | None = None,
) -> ShadowReport:
    """The would-be decisions of the agent's shadow rules (of one version's, if given) on its
    production traffic of the last ``since``.

    Raises:
        NotFound: no such agent or version.

    The decisions are read as a replay reads them (``agent.release.history``): the first on
    each proposed call, from its record.
        InvalidInput: a window that is not positive or is longer than a year.
    """
    require(actor, READ_ROLES, f"read the shadow rules of {agent_name!r}")
    if not timedelta(0) < since <= MAX_WINDOW:
        raise InvalidInput("the window is more than nothing and at most 365 days.")
    until = now or utcnow()
    start = until - since
    with read_session(platform.engine) as session:
        agent = agent_row(session, agent_name)
        if version is not None:
            version_row(session, agent, version)  # NotFound for a version it does not have
        decisions, _ = recorded_decisions(session, agent, start, until)
    flips: dict[FlipKey, list[int]] = defaultdict(list)
    matches: Counter[str] = Counter()
    counted = unchanged = 0
    for decision in decisions:
        shadow = (decision.record or {}).get("shadow")
        if not isinstance(shadow, Mapping) or version not in (None, decision.version):
            continue
        counted += 1
        for match in shadow.get("matched", ()):
            matches[str(match.get("rule_id"))] += 1
        would = str(shadow.get("effect"))
        if would == decision.recorded:
            unchanged += 1
        else:
            key = (decision.recorded, would, shadow.get("rule_id"), decision.tool, decision.version)
            flips[key].append(decision.run_id)
    return ShadowReport(
        agent=agent_name,
        version=version,
        since=start,
        until=until,
        decisions=counted,
        unchanged=unchanged,
        flips=grouped_flips(flips),
        rule_matches=dict(matches),
    )
