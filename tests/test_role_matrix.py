"""Who may do what, checked through the service functions themselves, not the console's pages.

Every action is attempted by an actor of each role on a seeded demo. An action counts as
allowed when the service gets past its role check (it may then succeed or refuse the input for
another reason); refused means ``Forbidden``. Hiding a button is never what stops a role.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from agent.actors import Actor
from agent.demo.seed import VERSIONS_DIR
from agent.errors import Forbidden, ServiceError
from agent.notify import save_settings
from agent.reads.audit import audit_log, verify_audit_log
from agent.reads.kpis import kpi_report
from agent.reads.queue import open_reviews
from agent.reads.runs import find_runs
from agent.release.brake import pause_agent, resume_agent
from agent.tasks import submit_task
from agent.undo import undo_call
from agent.users import add_user, disable_user, list_users, set_roles
from agent.versions import activate_version, create_agent, create_version, rollback
from storage.engine import read_session
from storage.enums import ReviewKind, ReviewStatus
from storage.models import Review, ToolCall
from storage.queries.audit import AuditFilter
from storage.queries.kpis import KpiFilter
from tests.support.console import engine_for
from tests.support.runtime import platform_for

ROLES = ("operator", "manager", "engineer", "admin")
EXPECTED: dict[str, set[str]] = {
    "read runs": {"operator", "manager", "engineer", "admin"},
    "read the review queue": {"operator", "manager"},
    "approve an escalation": {"operator"},
    "reject an escalation": {"operator"},
    "override a block its rule names managers for": {"manager"},
    "take a review": {"operator"},
    "give a review back": {"operator"},
    "take the next review": {"operator"},
    "undo a call": {"operator", "manager"},
    "change the notification settings": {"admin"},
    "submit a task": {"operator", "manager", "engineer"},
    "read KPIs": {"manager", "engineer"},
    "create an agent": {"engineer", "admin"},
    "create a version": {"engineer"},
    "activate a version": {"engineer"},
    "roll back": {"engineer", "operator"},
    "pause an agent": {"operator", "manager", "engineer"},
    "resume an agent": {"operator", "engineer"},
    "read the audit log": {"manager", "admin"},
    "verify the audit chain": {"manager", "admin"},
    "list users": {"manager", "admin"},
    "add a user": {"admin"},
    "set roles": {"admin"},
    "disable an account": {"admin"},
}


@pytest.fixture
def demo(demo_url: str) -> Iterator[Engine]:
    engine = engine_for(demo_url)
    yield engine
    engine.dispose()


def _review(engine: Engine, kind: ReviewKind, rule: str | None = None) -> int:
    with read_session(engine) as session:
        query = (
            select(Review.id)
            .where(col(Review.kind) == kind)
            .where(col(Review.status).in_([ReviewStatus.PENDING, ReviewStatus.BLOCKED]))
        )
        if rule:
            query = query.where(col(Review.rule_id) == rule)
        found = session.exec(query.order_by(col(Review.id))).first()
    assert found is not None, (kind, rule)
    return found


def _actions(engine: Engine, actor: Actor) -> dict[str, Callable[[], object]]:
    escalation = _review(engine, ReviewKind.ESCALATION)
    block = _review(engine, ReviewKind.BLOCK, "refund-over-limit")
    with read_session(engine) as session:
        call = session.exec(select(ToolCall.id).order_by(col(ToolCall.id))).first() or 0
    v2 = (VERSIONS_DIR / "support-v2.yaml").read_text()
    suffix = sorted(actor.roles)[0].value if actor.roles else "none"

    return {
        "read runs": lambda: find_runs(platform_for(engine), actor),
        "read the review queue": lambda: open_reviews(platform_for(engine), actor),
        "approve an escalation": lambda: reviews.approve(platform_for(engine), actor, escalation),
        "reject an escalation": lambda: reviews.reject(
            platform_for(engine), actor, escalation, "not needed"
        ),
        "override a block its rule names managers for": lambda: reviews.override(
            platform_for(engine), actor, block, "finance ticket FIN-7"
        ),
        "take a review": lambda: reviews.take_review(platform_for(engine), actor, block),
        "give a review back": lambda: reviews.release_review(platform_for(engine), actor, block),
        "take the next review": lambda: reviews.next_review(platform_for(engine), actor),
        "undo a call": lambda: undo_call(platform_for(engine), actor, call, reason="mistake"),
        "change the notification settings": lambda: save_settings(
            platform_for(engine), actor, "channels: {}\nroutes: []\n"
        ),
        "submit a task": lambda: submit_task(
            platform_for(engine), actor, "support", {"intent": "refund"}
        ),
        "read KPIs": lambda: kpi_report(platform_for(engine), actor, KpiFilter()),
        "create an agent": lambda: create_agent(platform_for(engine), actor, f"new-{suffix}"),
        "create a version": lambda: create_version(platform_for(engine), actor, "support", v2),
        "activate a version": lambda: activate_version(
            platform_for(engine), actor, "support", 2, reason="try v2"
        ),
        "roll back": lambda: rollback(platform_for(engine), actor, "support", reason="back"),
        # Resuming an agent that is not paused is refused past the role check, like pausing
        # one twice: either way the role matrix is what is asked.
        "pause an agent": lambda: pause_agent(platform_for(engine), actor, "it-access", reason="x"),
        "resume an agent": lambda: resume_agent(platform_for(engine), actor, "support", reason="y"),
        "read the audit log": lambda: audit_log(platform_for(engine), actor, AuditFilter()),
        "verify the audit chain": lambda: verify_audit_log(platform_for(engine), actor),
        "list users": lambda: list_users(platform_for(engine), actor),
        "add a user": lambda: add_user(platform_for(engine), actor, f"user-{suffix}", ["operator"]),
        "set roles": lambda: set_roles(platform_for(engine), actor, "oscar", ["operator"]),
        "disable an account": lambda: disable_user(platform_for(engine), actor, "oscar"),
    }


@pytest.mark.parametrize("role", [*ROLES, None])
def test_each_role_may_do_exactly_its_actions(demo: Engine, role: str | None) -> None:
    actor = Actor.of(f"tester-{role or 'nobody'}", [role] if role else [])
    allowed, refused = set(), set()
    for name, action in _actions(demo, actor).items():
        try:
            action()
        except Forbidden:
            refused.add(name)
        except ServiceError:
            allowed.add(name)  # past the role check; the input itself was refused
        else:
            allowed.add(name)
    expected = {name for name, roles in EXPECTED.items() if role in roles}
    assert allowed == expected
    assert refused == set(EXPECTED) - expected
