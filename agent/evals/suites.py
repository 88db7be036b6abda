"""An agent's evaluation suites: stored from YAML, listed, shown; each change audited.

Storing a suite under a name it already has replaces its content: cases are matched by name,
a case no longer in the source is retired (kept for the results that point at it), and the
suite's content hash changes, so an evaluation of the old content no longer satisfies the gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from agent.actors import READ_ROLES, Actor, require
from agent.errors import InvalidInput, NotFound
from agent.evals.document import parse_suite
from agent.evals.spec import SuiteSpec
from agent.platform import Platform
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import Role
from storage.models import Agent, EvalCase, EvalSuite
from storage.types import utcnow

EVAL_ROLES = frozenset({Role.ENGINEER})
"""Who writes suites and runs evaluations; everyone who reads the console reads them."""
MAX_SUITE_NAME = 128


@dataclass(frozen=True)
class SuiteInfo:
    """A stored suite, as people read it."""

    id: int
    agent: str
    name: str
    description: str
    content_hash: str
    required: bool
    threshold: float
    schedule: str | None
    cases: int
    tags: dict[str, int]
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "updated_at": self.updated_at.isoformat()}


def create_suite(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    name: str,
    yaml_text: str,
    *,
    replaces: str | None = None,
) -> SuiteInfo:
    """Store (or replace) an agent's suite from its YAML.

    Args:
        replaces: when given, the content hash the stored suite must still have: a change
            built on the suite as it was read is then never stored over someone else's change
            made meanwhile (the suite's row is locked while it is checked and written).

    Raises:
        Forbidden: the actor is not an engineer.
        NotFound: there is no such agent.
        SuiteSpecError: the document is invalid (the message names the line and the case).
        InvalidInput: the name is not a suite name, or the suite no longer has the content
            hash ``replaces`` names.
    """
    require(actor, EVAL_ROLES, f"store an evaluation suite of {agent_name!r}")
    name = name.strip()
    if (
        not name
        or len(name) > MAX_SUITE_NAME
        or not name.replace("-", "").replace("_", "").isalnum()
    ):
        raise InvalidInput(
            "a suite name is 1 to 128 letters, digits, '-' and '_' (for example support-core)."
        )
    parsed = parse_suite(yaml_text, registry=platform.registry)
    with write_session(platform.engine) as session:
        agent = agent_named(session, agent_name)
        query = select(EvalSuite).where(
            col(EvalSuite.agent_id) == agent.id, col(EvalSuite.name) == name
        )
        if replaces is not None:
            query = query.with_for_update()
        suite = session.exec(query).first()
        if replaces is not None and (suite is None or suite.content_hash != replaces):
            raise InvalidInput(
                f"suite {name!r} changed while this change was being made; nothing was "
                "stored, make it again on the suite as it is now."
            )
        action = "eval_suite.create" if suite is None else "eval_suite.update"
        if suite is None:
            suite = EvalSuite(agent_id=agent.id or 0, name=name, created_by=actor.name)
        spec = parsed.spec
        suite.description = spec.description[:2000]
        suite.document = parsed.document
        suite.source_yaml = yaml_text
        suite.content_hash = parsed.content_hash
        suite.required = spec.required
        suite.threshold = spec.threshold
        suite.schedule = spec.schedule
        suite.updated_at = utcnow()
        session.add(suite)
        session.flush()
        assert suite.id is not None
        _store_cases(session, suite.id, spec, parsed.document)
        append_event(
            session,
            actor=actor.name,
            action=action,
            target_type="eval_suite",
            target_id=suite.id,
            payload={"agent": agent_name, "name": name, "content_hash": parsed.content_hash},
        )
        return _info(session, suite, agent_name)


def list_suites(platform: Platform, actor: Actor, agent_name: str) -> tuple[SuiteInfo, ...]:
    """The agent's suites, by name.

    Raises:
        NotFound: there is no such agent.
    """
    require(actor, READ_ROLES, f"read the evaluation suites of {agent_name!r}")
    with read_session(platform.engine) as session:
        agent = agent_named(session, agent_name)
        suites = session.exec(
            select(EvalSuite)
            .where(col(EvalSuite.agent_id) == agent.id)
            .order_by(col(EvalSuite.name))
        ).all()
        return tuple(_info(session, suite, agent_name) for suite in suites)


def suite_row(session: Session, agent_name: str, name: str) -> tuple[Agent, EvalSuite]:
    """The agent and its suite called ``name``.

    Raises:
        NotFound: no such agent or suite.
    """
    agent = agent_named(session, agent_name)
    suite = session.exec(
        select(EvalSuite).where(col(EvalSuite.agent_id) == agent.id, col(EvalSuite.name) == name)
    ).first()
    if suite is None:
        raise NotFound(f"agent {agent_name!r} has no evaluation suite named {name!r}.")
    return agent, suite


def live_cases(session: Session, suite_id: int) -> list[EvalCase]:
    """The suite's cases that are in its current source, in the source's order."""
    return list(
        session.exec(
            select(EvalCase)
            .where(col(EvalCase.suite_id) == suite_id)
            .where(col(EvalCase.retired).is_(False))
            .order_by(col(EvalCase.id))
        ).all()
    )


def _store_cases(
    session: Session, suite_id: int, spec: SuiteSpec, document: dict[str, Any]
) -> None:
    existing = {
        case.name: case
        for case in session.exec(select(EvalCase).where(col(EvalCase.suite_id) == suite_id)).all()
    }
    for case, source in zip(spec.cases, document["cases"], strict=True):
        row = existing.pop(case.name, None) or EvalCase(suite_id=suite_id, name=case.name, input={})
        row.input = dict(case.input)
        row.expect = dict(case.expect)
        row.tags = list(case.tags)
        row.reviewer = list(source.get("reviewer", []))
        row.repeat = case.repeat
        row.shortest_path = case.shortest_path
        row.retired = False
        session.add(row)
    for retired in existing.values():
        retired.retired = True
        session.add(retired)


def agent_named(session: Session, name: str) -> Agent:
    """The agent called ``name``, or ``NotFound`` (the evaluation services' one look-up)."""
    agent = session.exec(select(Agent).where(col(Agent.name) == name)).first()
    if agent is None:
        raise NotFound(f"there is no agent named {name!r}.")
    return agent


def _info(session: Session, suite: EvalSuite, agent_name: str) -> SuiteInfo:
    assert suite.id is not None
    cases = live_cases(session, suite.id)
    tags: dict[str, int] = {}
    for case in cases:
        for tag in case.tags or ["untagged"]:
            tags[tag] = tags.get(tag, 0) + 1
    return SuiteInfo(
        id=suite.id,
        agent=agent_name,
        name=suite.name,
        description=suite.description,
        content_hash=suite.content_hash,
        required=suite.required,
        threshold=suite.threshold,
        schedule=suite.schedule,
        cases=len(cases),
        tags=dict(sorted(tags.items())),
        updated_at=suite.updated_at,
    )
