"""KPIs that calibrate autonomy, checked against a history worked by hand: rule outcomes and
auto-allow candidates, reviewer load and rubber stamps, and what reviews held back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from agent.actors import Actor
from agent.errors import Forbidden, InvalidInput
from agent.reads.kpis import KpiFilter, autonomy_report
from storage.engine import write_session
from storage.enums import DecisionKind, ReviewKind, ReviewStatus, RunStatus
from storage.models import Agent, AgentVersion, Review, ReviewDecision, Run, Task
from tests.support.cli import ok, steward
from tests.support.runtime import platform_for

# Within the KPI page's default range (the last 7 days).
T0 = (datetime.now(UTC) - timedelta(days=5)).replace(minute=0, second=0, microsecond=0)
MONA = Actor.of("mona", ["manager"])


def _history(engine: Engine) -> None:
    """Agent ``shop`` v1, 26 reviews:

    - ``refund-needs-approval``: 20 escalations of $349 refunds (risk 1349), 19 approved and one
      edited down to $200. Olga approved 10 after 10 minutes and 5 within 2 seconds (rubber
      stamps); Oscar approved 4 after 20 minutes and made the edit after 5 minutes.
    - ``refund-over-limit``: 3 blocks: Olga rejected $2,000 and $1,500 after 1 minute; the SLA
      clock expired one of $1,200.
    - ``lookup-check``: 3 escalations of a read (risk 0), approved by Olga within a second (not
      high risk, so no rubber stamp), one still open.
    """
    with write_session(engine) as session:
        agent = Agent(name="shop")
        session.add(agent)
        session.flush()
        version = AgentVersion(
            agent_id=agent.id or 0,
            number=1,
            content_hash="h",
            policy_hash="p",
            spec={},
            source_yaml="",
            created_by="erin",
        )
        session.add(version)
        session.flush()
        moment = [T0]

        def review(
            rule: str,
            tool: str,
            args: dict[str, object],
            risk: int,
            decision: tuple[str, DecisionKind, float] | None,
            *,
            edited: dict[str, object] | None = None,
        ) -> None:
            moment[0] += timedelta(minutes=30)
            task = Task(agent_id=agent.id or 0, input={"q": 1}, submitted_by="sam")
            session.add(task)
            session.flush()
            run = Run(
                task_id=task.id or 0,
                agent_id=agent.id or 0,
                version_id=version.id or 0,
                status=RunStatus.SUCCEEDED,
                created_at=moment[0],
            )
            session.add(run)
            session.flush()
            status = {
                None: ReviewStatus.PENDING,
                DecisionKind.APPROVE: ReviewStatus.APPROVED,
                DecisionKind.EDIT: ReviewStatus.EDITED,
                DecisionKind.REJECT: ReviewStatus.REJECTED,
                DecisionKind.EXPIRE: ReviewStatus.EXPIRED,
            }[decision[1] if decision else None]
            decided_at = moment[0] + timedelta(seconds=decision[2]) if decision else None
            row = Review(
                run_id=run.id or 0,
                agent_id=agent.id or 0,
                version_id=version.id or 0,
                kind=ReviewKind.ESCALATION,
                status=status,
                tool=tool,
                args=args,
                policy_hash="p",
                rule_id=rule,
                risk=risk,
                decided_by=decision[0] if decision else None,
                decided_at=decided_at,
                created_at=moment[0],
            )
            session.add(row)
            session.flush()
            if decision is not None:
                session.add(
                    ReviewDecision(
                        review_id=row.id or 0,
                        decision=decision[1],
                        actor=decision[0],
                        args=edited,
                        created_at=decided_at or moment[0],
                    )
                )

        refund = {"order_id": "O-1", "amount": 349.0}
        needs, over, lookup = "refund-needs-approval", "refund-over-limit", "lookup-check"
        approve, reject, expire = DecisionKind.APPROVE, DecisionKind.REJECT, DecisionKind.EXPIRE
        for _ in range(10):
            review(needs, "issue_refund", refund, 1349, ("olga", approve, 600))
        for _ in range(5):
            review(needs, "issue_refund", refund, 1349, ("olga", approve, 2))
        for _ in range(4):
            review(needs, "issue_refund", refund, 1349, ("oscar", approve, 1200))
        review(
            needs,
            "issue_refund",
            refund,
            1349,
            ("oscar", DecisionKind.EDIT, 300),
            edited={"order_id": "O-1", "amount": 200.0},
        )
        review(over, "issue_refund", {"amount": 2000.0}, 1999, ("olga", reject, 60))
        review(over, "issue_refund", {"amount": 1500.0}, 1999, ("olga", reject, 60))
        review(over, "issue_refund", {"amount": 1200.0}, 1999, ("system", expire, 3600))
        for _ in range(3):
            review(lookup, "lookup_order", {"order_id": "O-1"}, 0, ("olga", approve, 1))
        review("lookup-check", "lookup_order", {"order_id": "O-1"}, 0, None)


def test_rules_reviewers_rubber_stamps_and_what_was_held_back(engine: Engine) -> None:
    _history(engine)
    report = autonomy_report(platform_for(engine), MONA, KpiFilter(agent="shop"))

    rules = report.rules.set_index("rule_id")
    refunds = rules.loc["refund-needs-approval"]
    assert (refunds["reviews"], refunds["decided"]) == (20, 20)
    assert refunds["approve_rate"] == pytest.approx(0.95)
    assert refunds["edit_rate"] == pytest.approx(0.05)
    assert bool(refunds["auto_allow_candidate"]) is True
    over = rules.loc["refund-over-limit"]
    assert over["reject_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert over["expire_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert bool(over["auto_allow_candidate"]) is False
    lookups = rules.loc["lookup-check"]
    assert (lookups["reviews"], lookups["decided"], lookups["approve_rate"]) == (4, 3, 1.0)
    assert bool(lookups["auto_allow_candidate"]) is False  # too few decisions
    # Decided in 2 s (5 reviews), 300 s (1), 600 s (10) and 1200 s (4): the median is 600 s.
    assert refunds["median_decision_s"] == pytest.approx(600.0)

    reviewers = report.reviewers.set_index("reviewer")
    assert list(reviewers.index) == ["olga", "oscar"]  # most decisions first; no "system"
    olga = reviewers.loc["olga"]
    assert (olga["decisions"], olga["approved"], olga["rejected"], olga["rubber_stamps"]) == (
        20,
        18,
        2,
        5,
    )
    oscar = reviewers.loc["oscar"]
    assert (oscar["decisions"], oscar["approved"], oscar["edited"], oscar["rubber_stamps"]) == (
        5,
        4,
        1,
        0,
    )
    assert oscar["median_decision_s"] == pytest.approx(1200.0)

    stamps = report.rubber_stamps
    assert len(stamps) == 5
    assert set(stamps["reviewer"]) == {"olga"}
    assert set(stamps["risk"]) == {1349} and set(stamps["decided_in_s"]) == {2.0}

    held = report.held_back.set_index("tool")
    refund_held = held.loc["issue_refund"]
    assert (refund_held["rejected"], refund_held["expired"], refund_held["edited_down"]) == (
        2,
        1,
        1,
    )
    assert refund_held["amount_held_usd"] == pytest.approx(2000 + 1500 + 1200 + 149)
    assert report.money_held_usd == pytest.approx(4849.0)
    assert report.calls_held == 3
    assert "lookup_order" not in held.index  # reads hold nothing back


def test_the_report_is_for_managers_and_engineers_and_checks_its_thresholds(
    engine: Engine,
) -> None:
    _history(engine)
    platform = platform_for(engine)
    with pytest.raises(Forbidden):
        autonomy_report(platform, Actor.of("olga", ["operator"]), KpiFilter())
    with pytest.raises(InvalidInput, match="at most 1"):
        autonomy_report(platform, MONA, KpiFilter(), min_share=1.5)
    strict = autonomy_report(platform, MONA, KpiFilter(), min_decisions=21)
    assert not strict.rules["auto_allow_candidate"].any()
    later = autonomy_report(platform, MONA, KpiFilter(since=T0 + timedelta(days=3)))
    assert later.rules.empty and later.reviewers.empty and later.money_held_usd == 0.0
    assert autonomy_report(platform, MONA, KpiFilter(agent="nobody")).rules.empty


def test_the_cli_prints_the_autonomy_report(migrated: Engine) -> None:
    from agent.demo.seed import seed_demo

    seed_demo(platform_for(migrated), with_tasks=False)  # the demo's people
    _history(migrated)
    out = ok(steward(migrated, "kpis", "--autonomy", "--agent", "shop", "--as", "mona"))
    assert "refund-needs-approval" in out and "auto-allow candidate" in out
    assert "rubber stamps: 5" in out
    assert "held back: $4,849.00 and 3 side-effecting calls" in out


def test_the_kpi_page_shows_where_autonomy_can_grow(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.console import engine_for
    from tests.support.pages import open_page

    engine = engine_for(demo_url)
    _history(engine)
    engine.dispose()
    at = open_page(monkeypatch, demo_url, "kpis.py", user="mona", state={"kpis.agent": "shop"})
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Held back by reviews"] == "$4,849.00"
    assert metrics["Side-effecting calls stopped"] == "3"
    rules = next(df.value for df in at.dataframe if "rule id" in df.value.columns)
    marked = dict(zip(rules["rule id"], rules["auto allow candidate"], strict=True))
    assert marked == {"lookup-check": "", "refund-needs-approval": "✔", "refund-over-limit": ""}
    reviewers = next(df.value for df in at.dataframe if "reviewer" in df.value.columns[:1])
    assert dict(zip(reviewers["reviewer"], reviewers["rubber stamps"], strict=True)) == {
        "olga": 5,
        "oscar": 0,
    }
