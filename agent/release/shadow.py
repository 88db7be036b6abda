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

import sqlalchemy as sa

from agent.actors import READ_ROLES, Actor, require
from agent.errors import InvalidInput, NotFound
from agent.platform import Platform
from agent.release.report import EXAMPLES, Flip
from storage.engine import read_session
from storage.enums import StepKind
from storage.tables import AGENT_VERSIONS, AGENTS, RUNS, STEPS
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
        InvalidInput: a window that is not positive or is longer than a year.
    """
    require(actor, READ_ROLES, f"read the shadow rules of {agent_name!r}")
    if not timedelta(0) < since <= MAX_WINDOW:
        raise InvalidInput("the window is more than nothing and at most 365 days.")
    until = now or utcnow()
    start = until - since
    record = STEPS.c.output["policy"]
    query = (
        sa.select(
            STEPS.c.run_id,
            STEPS.c.call_id,
            STEPS.c.name,
            record["effect"].as_string(),
            record["shadow"],
            AGENT_VERSIONS.c.number,
        )
        .join(RUNS, RUNS.c.id == STEPS.c.run_id)
        .join(AGENT_VERSIONS, AGENT_VERSIONS.c.id == RUNS.c.version_id)
        .join(AGENTS, AGENTS.c.id == RUNS.c.agent_id)
        .where(AGENTS.c.name == agent_name)
        .where(RUNS.c.eval_run_id.is_(None))
        .where(STEPS.c.kind == StepKind.APPLY_GUARDRAIL)
        .where(STEPS.c.started_at >= start)
        .where(STEPS.c.started_at <= until)
        .order_by(STEPS.c.run_id, STEPS.c.seq)
    )
    if version is not None:
        query = query.where(AGENT_VERSIONS.c.number == version)
    with read_session(platform.engine) as session:
        connection = session.connection()
        known = connection.execute(
            sa.select(AGENTS.c.id).where(AGENTS.c.name == agent_name)
        ).first()
        if known is None:
            raise NotFound(f"there is no agent named {agent_name!r}.")
        if (
            version is not None
            and not connection.execute(
                sa.select(AGENT_VERSIONS.c.id)
                .where(AGENT_VERSIONS.c.agent_id == known[0])
                .where(AGENT_VERSIONS.c.number == version)
            ).first()
        ):
            raise NotFound(f"agent {agent_name!r} has no version {version}.")
        rows = connection.execute(query).all()
    seen: set[tuple[int, str]] = set()
    flips: dict[tuple[str, str, str | None, str, int], list[int]] = defaultdict(list)
    matches: Counter[str] = Counter()
    decisions = unchanged = 0
    for run_id, call_id, tool, effect, shadow, number in rows:
        key = (run_id, str(call_id))
        if key in seen or not isinstance(shadow, Mapping) or effect is None:
            continue  # the first decision on a call is the one on its proposal
        seen.add(key)
        decisions += 1
        for match in shadow.get("matched", ()):
            matches[str(match.get("rule_id"))] += 1
        would = str(shadow.get("effect"))
        if would == effect:
            unchanged += 1
        else:
            flips[(effect, would, shadow.get("rule_id"), tool, number)].append(run_id)
    return ShadowReport(
        agent=agent_name,
        version=version,
        since=start,
        until=until,
        decisions=decisions,
        unchanged=unchanged,
        flips=tuple(
            sorted(
                (
                    Flip(
                        from_effect=k[0],
                        to_effect=k[1],
                        rule_id=k[2],
                        tool=k[3],
                        version=k[4],
                        count=len(runs),
                        runs=tuple(sorted(set(runs)))[:EXAMPLES],
                    )
                    for k, runs in flips.items()
                ),
                key=lambda f: (-f.count, f.tool),
            )
        ),
        rule_matches=dict(matches),
    )
