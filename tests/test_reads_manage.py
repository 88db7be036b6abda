"""Read services behind the managers', engineers' and admins' views: who may read what, bad
inputs, audit filters and paging, chain verification, and what a rollback would return to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agent.actors import Actor
from agent.errors import Forbidden, InvalidInput, NotFound
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
from storage.engine import write_session
from storage.enums import ReviewKind, ReviewStatus
from storage.models import AgentVersion, Review, Run, Task
from storage.queries.audit import AuditFilter
from storage.queries.kpis import KpiFilter
from tests.support.runtime import platform_for

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
    assert kpi_report(platform_for(engine), MANAGER, KpiFilter()).runs["total"] == 0
    assert kpi_report(platform_for(engine), ENGINEER, KpiFilter(), grain="hour").trend.empty
    for reader in (OPERATOR, ADMIN):
        with pytest.raises(Forbidden, match="may not read KPIs"):
            kpi_report(platform_for(engine), reader, KpiFilter())
    with pytest.raises(Forbidden):
        kpi_comparison(platform_for(engine), OPERATOR, "shop", 1, 2, flt=KpiFilter())


def test_kpi_inputs_are_checked(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="ends before it starts"):
        kpi_report(platform_for(engine), MANAGER, KpiFilter(since=T0, until=T0))
    with pytest.raises(InvalidInput, match="not 'week'"):
        kpi_report(platform_for(engine), MANAGER, KpiFilter(), grain="week")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="two different versions"):
        kpi_comparison(platform_for(engine), MANAGER, "shop", 2, 2, flt=KpiFilter())
    table = kpi_comparison(platform_for(engine), MANAGER, "shop", 1, 2, flt=KpiFilter())
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
    everything = audit_log(platform_for(engine), ADMIN, AuditFilter(), limit=12)
    assert (everything.total, everything.pages, everything.number) == (30, 3, 1)
    assert [e.seq for e in everything.items] == list(range(30, 18, -1))
    assert everything.next_offset == 12
    last = audit_log(platform_for(engine), MANAGER, AuditFilter(), offset=24, limit=12)
    assert [e.seq for e in last.items] == list(range(6, 0, -1))
    assert (last.number, last.next_offset, last.has_more) == (3, None, False)
    # A window past the end is empty, and says where the last one starts.
    beyond = audit_log(platform_for(engine), MANAGER, AuditFilter(), offset=99, limit=12)
    assert (beyond.items, beyond.total, beyond.next_offset, beyond.last_offset) == (
        (),
        30,
        None,
        24,
    )

    by_actor = audit_log(platform_for(engine), MANAGER, AuditFilter(actor="olga"))
    assert by_actor.total == 10
    assert {e.action for e in by_actor.items} == {"user.login"}
    by_target = audit_log(
        platform_for(engine), MANAGER, AuditFilter(target_type="user", target_id="u3")
    )
    assert [(e.actor, e.target_id) for e in by_target.items] == [("ada", "u3")]
    in_range = audit_log(
        platform_for(engine),
        MANAGER,
        AuditFilter(action="version.activate", since=T0 + timedelta(days=1, minutes=5)),
    )
    assert [e.payload["to"] for e in in_range.items] == [9, 8, 7, 6, 5]
    before = audit_log(platform_for(engine), MANAGER, AuditFilter(until=T0 + timedelta(minutes=2)))
    assert [e.target_id for e in before.items] == ["u1", "u0"]
    nothing = audit_log(platform_for(engine), MANAGER, AuditFilter(actor="nobody"))
    assert (nothing.total, nothing.items, nothing.pages, nothing.next_offset) == (0, (), 1, None)

    facets = audit_filter_values(platform_for(engine), ADMIN)
    assert facets.actors == ("ada", "mona", "olga")
    assert facets.actions == ("user.add", "user.login", "version.activate")
    assert facets.target_types == ("agent", "user")


def test_audit_log_refuses_other_roles_and_bad_input(engine: Engine) -> None:
    for reader in (OPERATOR, ENGINEER):
        with pytest.raises(Forbidden, match="may not read the audit log"):
            audit_log(platform_for(engine), reader, AuditFilter())
        with pytest.raises(Forbidden):
            audit_filter_values(platform_for(engine), reader)
        with pytest.raises(Forbidden, match="may not verify the audit log"):
            verify_audit_log(platform_for(engine), reader)
    for size in (0, -1, 1001):
        with pytest.raises(InvalidInput, match=f"a page holds 1 to 1000 events, not {size}"):
            audit_log(platform_for(engine), MANAGER, AuditFilter(), limit=size)
    with pytest.raises(InvalidInput, match="the offset is from 0 to 2147483647 events, not -1"):
        audit_log(platform_for(engine), MANAGER, AuditFilter(), offset=-1)
    with pytest.raises(InvalidInput, match="ends before it starts"):
        audit_log(platform_for(engine), MANAGER, AuditFilter(since=T0, until=T0 - timedelta(1)))


def test_verification_finds_the_first_altered_event(engine: Engine) -> None:
    _audit_history(engine)
    intact = verify_audit_log(platform_for(engine), MANAGER)
    assert (intact.ok, intact.count) == (True, 30)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq IN (12, 20)"))
    broken = verify_audit_log(platform_for(engine), ADMIN)
    assert (broken.ok, broken.first_bad_seq, broken.count) == (False, 12, 11)
    assert "altered" in broken.problem


def _agent_with_two_versions(engine: Engine) -> None:
    create_agent(platform_for(engine), ENGINEER, "shop")
    for seed in (1, 2):
        create_version(platform_for(engine), ENGINEER, "shop", VERSION.format(seed=seed))
    activate_version(platform_for(engine), ENGINEER, "shop", 1, reason="start")


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
    # Version 1 is active: its reviews are not pinned to an older version.
    assert pinned_reviews(platform_for(engine), OPERATOR, "shop").total == 1
    assert rollback_target(platform_for(engine), ENGINEER, "shop") is None
    activate_version(platform_for(engine), ENGINEER, "shop", 2, reason="try 2")
    pinned = pinned_reviews(platform_for(engine), MANAGER, "shop")
    target = rollback_target(platform_for(engine), MANAGER, "shop")
    with pytest.raises(NotFound):
        pinned_reviews(platform_for(engine), MANAGER, "nobody")
    assert (pinned.total, pinned.by_version) == (2, {1: 2})
    assert [(r.id, r.version, r.status) for r in pinned.reviews.items] == [
        (pending, 1, "pending"),
        (blocked, 1, "blocked"),
    ]
    assert target is not None
    assert target.number == 1
    rollback(platform_for(engine), ENGINEER, "shop", reason="back")
    assert rollback_target(platform_for(engine), ENGINEER, "shop") is None
    assert pinned_reviews(platform_for(engine), ENGINEER, "shop").by_version == {2: 1}
