"""Read services behind the managers', engineers' and admins' views: who may read what, bad
inputs, audit filters and paging, chain verification, and what a rollback would return to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agent.actors import Actor
from agent.errors import Forbidden, InvalidInput, NotFound
from agent.plugins import installed_registry
from agent.reads.audit import audit_filter_values, audit_log, verify_audit_log
from agent.reads.kpis import kpi_comparison, kpi_report
from agent.versions import (
    activate_version,
    create_agent,
    create_version,
    pinned_reviews,
    rollback,
    rollback_target,
)
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import ReviewKind, ReviewStatus
from storage.models import AgentVersion, Review, Run, Task
from storage.queries.audit import AuditFilter
from storage.queries.kpis import KpiFilter

MANAGER = Actor.of("mona", ["manager"])
ENGINEER = Actor.of("erin", ["engineer"])
OPERATOR = Actor.of("olga", ["operator"])
ADMIN = Actor.of("ada", ["admin"])
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
VERSION = (
    "planner: {{kind: playbook, playbooks: [], seed: {seed}}}\n"
    "tools: []\n"
    "policy: {{default: allow}}\n"
)


def test_kpis_are_for_managers_and_engineers(engine: Engine) -> None:
    with read_session(engine) as session:
        assert kpi_report(MANAGER, KpiFilter(), session=session).runs["total"] == 0
        assert kpi_report(ENGINEER, KpiFilter(), session=session, grain="hour").trend.empty
        for reader in (OPERATOR, ADMIN):
            with pytest.raises(Forbidden, match="may not read KPIs"):
                kpi_report(reader, KpiFilter(), session=session)
        with pytest.raises(Forbidden):
            kpi_comparison(OPERATOR, KpiFilter(), "shop", 1, 2, session=session)


def test_kpi_inputs_are_checked(engine: Engine) -> None:
    with read_session(engine) as session:
        with pytest.raises(InvalidInput, match="ends before it starts"):
            kpi_report(MANAGER, KpiFilter(since=T0, until=T0), session=session)
        with pytest.raises(InvalidInput, match="not 'week'"):
            kpi_report(MANAGER, KpiFilter(), session=session, grain="week")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="two different versions"):
            kpi_comparison(MANAGER, KpiFilter(), "shop", 2, 2, session=session)
        table = kpi_comparison(MANAGER, KpiFilter(), "shop", 1, 2, session=session)
    assert table.set_index("metric").loc["runs"].tolist()[:2] == [0, 0]


def _audit_history(engine: Engine) -> None:
    """30 events: ada adds users 0-9, olga logs in 10 times, mona changes versions 10 times."""
    with write_session(engine) as session:
        for i in range(10):
            at = T0 + timedelta(minutes=i)
            for actor, action, target_type, target_id, moment in (
                ("ada", "user.add", "user", f"u{i}", at),
                ("olga", "user.login", "user", "olga", at + timedelta(hours=1)),
                ("mona", "version.activate", "agent", "shop", at + timedelta(days=1)),
            ):
                append_event(
                    session,
                    actor=actor,
                    action=action,
                    target_type=target_type,
                    target_id=target_id,
                    payload={"to": i},
                    at=moment,
                )


def test_audit_log_filters_and_pages(engine: Engine) -> None:
    _audit_history(engine)
    with read_session(engine) as session:
        everything = audit_log(ADMIN, AuditFilter(), session=session, page_size=12)
        assert (everything.total, everything.pages, everything.page) == (30, 3, 1)
        assert [e.seq for e in everything.entries] == list(range(30, 18, -1))
        last = audit_log(MANAGER, AuditFilter(), session=session, page=3, page_size=12)
        assert [e.seq for e in last.entries] == list(range(6, 0, -1))
        # A page past the end shows the last one.
        assert audit_log(MANAGER, AuditFilter(), session=session, page=9, page_size=12).page == 3

        by_actor = audit_log(MANAGER, AuditFilter(actor="olga"), session=session)
        assert by_actor.total == 10
        assert {e.action for e in by_actor.entries} == {"user.login"}
        by_target = audit_log(
            MANAGER, AuditFilter(target_type="user", target_id="u3"), session=session
        )
        assert [(e.actor, e.target_id) for e in by_target.entries] == [("ada", "u3")]
        in_range = audit_log(
            MANAGER,
            AuditFilter(action="version.activate", since=T0 + timedelta(days=1, minutes=5)),
            session=session,
        )
        assert [e.payload["to"] for e in in_range.entries] == [9, 8, 7, 6, 5]
        before = audit_log(MANAGER, AuditFilter(until=T0 + timedelta(minutes=2)), session=session)
        assert [e.target_id for e in before.entries] == ["u1", "u0"]
        nothing = audit_log(MANAGER, AuditFilter(actor="nobody"), session=session)
        assert (nothing.total, nothing.entries, nothing.pages) == (0, (), 1)

        facets = audit_filter_values(ADMIN, session=session)
        assert facets.actors == ("ada", "mona", "olga")
        assert facets.actions == ("user.add", "user.login", "version.activate")
        assert facets.target_types == ("agent", "user")


def test_audit_log_refuses_other_roles_and_bad_input(engine: Engine) -> None:
    with read_session(engine) as session:
        for reader in (OPERATOR, ENGINEER):
            with pytest.raises(Forbidden, match="may not read the audit log"):
                audit_log(reader, AuditFilter(), session=session)
            with pytest.raises(Forbidden):
                audit_filter_values(reader, session=session)
            with pytest.raises(Forbidden, match="may not verify the audit log"):
                verify_audit_log(reader, session=session)
        for size in (0, 501):
            with pytest.raises(InvalidInput, match="a page holds 1 to 500 events"):
                audit_log(MANAGER, AuditFilter(), session=session, page_size=size)
        with pytest.raises(InvalidInput, match="ends before it starts"):
            audit_log(MANAGER, AuditFilter(since=T0, until=T0 - timedelta(1)), session=session)


def test_verification_finds_the_first_altered_event(engine: Engine) -> None:
    _audit_history(engine)
    with read_session(engine) as session:
        intact = verify_audit_log(MANAGER, session=session)
    assert (intact.ok, intact.count) == (True, 30)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq IN (12, 20)"))
    with read_session(engine) as session:
        broken = verify_audit_log(ADMIN, session=session)
    assert (broken.ok, broken.first_bad_seq, broken.count) == (False, 12, 11)
    assert "altered" in broken.problem


def _agent_with_two_versions(engine: Engine) -> None:
    with write_session(engine) as session:
        create_agent(ENGINEER, "shop", session=session)
        for seed in (1, 2):
            create_version(
                ENGINEER,
                "shop",
                VERSION.format(seed=seed),
                session=session,
                registry=installed_registry(),
            )
        activate_version(ENGINEER, "shop", 1, session=session, reason="start")


def _open_review(engine: Engine, number: int, status: ReviewStatus) -> int:
    """An open (or decided) review raised by version ``number`` of shop; returns its id."""
    with write_session(engine) as session:
        version = session.exec(
            sa.select(AgentVersion).where(AgentVersion.number == number)  # type: ignore[arg-type]
        ).scalar_one()
        task = Task(agent_id=version.agent_id, input={"q": 1}, submitted_by="olga")
        session.add(task)
        session.flush()
        run = Run(task_id=task.id or 0, agent_id=version.agent_id, version_id=version.id or 0)
        session.add(run)
        session.flush()
        review = Review(
            run_id=run.id or 0,
            agent_id=version.agent_id,
            version_id=version.id or 0,
            kind=ReviewKind.ESCALATION,
            status=status,
            policy_hash="p",
            tool="pay",
            created_at=T0 + timedelta(minutes=number),
        )
        session.add(review)
        session.flush()
        return review.id or 0


def test_pinned_reviews_and_the_rollback_target(engine: Engine) -> None:
    _agent_with_two_versions(engine)
    pending = _open_review(engine, 1, ReviewStatus.PENDING)
    blocked = _open_review(engine, 1, ReviewStatus.BLOCKED)
    _open_review(engine, 1, ReviewStatus.APPROVED)  # decided: not pinned
    _open_review(engine, 2, ReviewStatus.PENDING)
    with read_session(engine) as session:
        # Version 1 is active: its reviews are not pinned to an older version.
        assert pinned_reviews(OPERATOR, "shop", session=session).total == 1
        assert rollback_target(ENGINEER, "shop", session=session) is None
    with write_session(engine) as session:
        activate_version(ENGINEER, "shop", 2, session=session, reason="try 2")
    with read_session(engine) as session:
        pinned = pinned_reviews(MANAGER, "shop", session=session)
        target = rollback_target(MANAGER, "shop", session=session)
        with pytest.raises(NotFound):
            pinned_reviews(MANAGER, "nobody", session=session)
    assert (pinned.total, pinned.by_version) == (2, {1: 2})
    assert [(r.id, r.version, r.status) for r in pinned.reviews] == [
        (pending, 1, "pending"),
        (blocked, 1, "blocked"),
    ]
    assert target is not None
    assert target.number == 1
    with write_session(engine) as session:
        rollback(ENGINEER, "shop", session=session, reason="back")
    with read_session(engine) as session:
        assert rollback_target(ENGINEER, "shop", session=session) is None
        assert pinned_reviews(ENGINEER, "shop", session=session).by_version == {2: 1}
