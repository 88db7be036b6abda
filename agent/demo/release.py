"""The release demo: each demo agent's evaluation suite, support versions 3 and 4, and the
evaluations a new user finds on screen.

Support version 3 raises the auto-refund limit to $500 ("let small refunds through without
review"): the support suite catches it on a security case and on normal cases that pass on the
active version, so activation gating refuses it. Version 4 keeps the intent with a $100 limit and
passes every case; it is left unevaluated so a new user runs its evaluation and activates it.

Everything here is stored through the services (and their audit events) as the demo's engineer
would, after the demo's versions are active: a required suite stored first would gate the very
activation that starts the demo.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, col, select

from agent.actors import Actor
from agent.demo import version_yaml
from agent.demo.tasks import IT_ACCESS, SUPPORT
from agent.evals.service import EvaluationInfo, run_evaluation
from agent.evals.suites import create_suite
from agent.platform import Platform
from agent.versions import create_version
from storage.engine import read_session
from storage.models import Agent, AgentVersion, EvalRun, EvalSuite

SUITES_DIR = Path(__file__).parent / "suites"
SUITES = {SUPPORT: "support", IT_ACCESS: "it-access"}
"""Each demo agent's suite: stored under this name from ``suites/<name>.yaml``."""
RELEASE_VERSIONS: dict[str, tuple[tuple[int, str], ...]] = {
    SUPPORT: (
        (3, "let small refunds through without review"),
        (
            4,
            "let small refunds through without review, up to $100: over $100 a person "
            "approves again, so an injected or unusual amount is never paid unreviewed",
        ),
    ),
}
"""Versions after the demo's first two, by number, with the note each is stored with."""
EVALUATED_CANDIDATES = {SUPPORT: (3,)}
"""Versions evaluated at seeding besides the active one: the regression, so its failing cases
are on screen; its successor is not, so a new user runs it."""
SEED_CONCURRENCY = 4


def suite_yaml(agent: str) -> str:
    """The YAML of a demo agent's suite, e.g. ``suite_yaml("support")``.

    Raises:
        KeyError: the agent is not a demo agent.
    """
    return (SUITES_DIR / f"{SUITES[agent]}.yaml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class SeededEvaluation:
    """One evaluation the seed ran, in a line."""

    agent: str
    version: int
    status: str
    passed: int
    failed: int

    def __str__(self) -> str:
        return (
            f"{self.agent} v{self.version}: {self.status} "
            f"({self.passed}/{self.passed + self.failed} cases)"
        )


def seed_release(
    platform: Platform, engineer: Actor
) -> tuple[list[str], list[str], list[SeededEvaluation]]:
    """Add whatever of the release demo is missing: versions, suites, evaluations.

    A suite already stored under the demo's name is left as it is (an engineer may have edited
    it); an evaluation is run only when none of that suite's current content exists on that
    version.

    Returns:
        The versions created (``support v3``), the suites stored, the evaluations run.
    """
    versions = _add_versions(platform, engineer)
    suites = [
        agent for agent, name in SUITES.items() if _store_suite(platform, engineer, agent, name)
    ]
    evaluations = [
        SeededEvaluation(e.agent, e.version, e.status.value, e.passed, e.failed)
        for e in _evaluate(platform, engineer)
    ]
    return versions, suites, evaluations


def _add_versions(platform: Platform, engineer: Actor) -> list[str]:
    created = []
    for agent, versions in RELEASE_VERSIONS.items():
        with read_session(platform.engine) as session:
            stored = set(
                session.exec(
                    select(AgentVersion.number)
                    .join(Agent, col(Agent.id) == col(AgentVersion.agent_id))
                    .where(col(Agent.name) == agent)
                ).all()
            )
        for number, note in versions:
            # Numbers are given in order: a version is only added as the one after the last.
            if number in stored or number - 1 not in stored:
                continue
            create_version(platform, engineer, agent, version_yaml(f"{agent}-v{number}"), note=note)
            stored.add(number)
            created.append(f"{agent} v{number}")
    return created


def _store_suite(platform: Platform, engineer: Actor, agent: str, name: str) -> bool:
    with read_session(platform.engine) as session:
        exists = session.exec(
            select(EvalSuite.id)
            .join(Agent, col(Agent.id) == col(EvalSuite.agent_id))
            .where(col(Agent.name) == agent, col(EvalSuite.name) == name)
        ).first()
    if exists is not None:
        return False
    create_suite(platform, engineer, agent, name, suite_yaml(agent))
    return True


def _evaluate(platform: Platform, engineer: Actor) -> Iterator[EvaluationInfo]:
    with read_session(platform.engine) as session:
        plan = [
            (agent, suite, number)
            for agent, suite in SUITES.items()
            for number in _to_evaluate(session, agent, suite)
        ]
    if not plan:
        return
    # Side by side: each evaluation spends most of its time waiting on SQLite commits.
    with ThreadPoolExecutor(len(plan), thread_name_prefix="steward-seed") as pool:
        runs = [
            pool.submit(
                run_evaluation,
                platform,
                engineer,
                agent,
                version=number,
                suite=suite,
                concurrency=SEED_CONCURRENCY,
            )
            for agent, suite, number in plan
        ]
        for run in runs:
            yield from run.result()


def _to_evaluate(session: Session, agent_name: str, suite_name: str) -> list[int]:
    """The version numbers the seed evaluates that have no evaluation of the suite's current
    content yet: the active one, then the candidates."""
    agent = session.exec(select(Agent).where(col(Agent.name) == agent_name)).first()
    if agent is None or agent.active_version_id is None:
        return []
    suite = session.exec(
        select(EvalSuite).where(
            col(EvalSuite.agent_id) == agent.id, col(EvalSuite.name) == suite_name
        )
    ).first()
    if suite is None:
        return []
    versions = {
        v.number: v
        for v in session.exec(
            select(AgentVersion).where(col(AgentVersion.agent_id) == agent.id)
        ).all()
    }
    active = next(n for n, v in versions.items() if v.id == agent.active_version_id)
    wanted = [active, *(n for n in EVALUATED_CANDIDATES.get(agent_name, ()) if n != active)]
    evaluated = set(
        session.exec(
            select(EvalRun.version_id).where(
                col(EvalRun.suite_id) == suite.id,
                col(EvalRun.suite_hash) == suite.content_hash,
            )
        ).all()
    )
    return [n for n in wanted if n in versions and versions[n].id not in evaluated]
