"""The audit view: filters by actor, action, target and time, pages, and verifies the chain,
naming the first broken link after an event was altered in the database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import col, func, select

from storage.engine import read_session
from storage.models import AuditEvent
from tests.support.console import engine_for
from tests.support.pages import open_page


def _events(at):  # type: ignore[no-untyped-def]
    return next(df.value for df in at.dataframe if df.value.columns[0] == "#")


def _count(url: str, *conditions: object) -> int:
    engine = engine_for(url)
    with read_session(engine) as session:
        n = session.exec(select(func.count()).select_from(AuditEvent).where(*conditions)).one()
    engine.dispose()
    return int(n)


def test_filters_and_pages(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    total = _count(demo_url)
    at = open_page(monkeypatch, demo_url, "audit.py", user="mona", state={"audit.page_size": 25})
    assert at.caption[0].value.startswith(f"{total:,} events match; page 1 of {-(-total // 25)}")
    first = _events(at)
    assert first["#"].tolist() == list(range(total, total - 25, -1))
    at.button(key="audit.next").click().run()
    assert _events(at)["#"].tolist()[0] == total - 25

    # A filter starts again on its first page, and shows only what matches.
    at.selectbox(key="audit.actor").select("erin").run()
    assert at.number_input(key="audit.page").value == 1
    by_erin = _events(at)
    assert set(by_erin["actor"]) == {"erin"}
    assert len(by_erin) == _count(demo_url, col(AuditEvent.actor) == "erin")

    at.selectbox(key="audit.actor").select("Anyone")
    at.selectbox(key="audit.action").select("version.activate")
    at.selectbox(key="audit.target_type").select("agent").run()
    activations = _events(at)
    assert set(activations["action"]) == {"version.activate"}
    assert len(activations) == _count(demo_url, col(AuditEvent.action) == "version.activate")
    at.text_input(key="audit.target_id").input("support").run()
    assert _events(at)["target"].tolist() == ["agent support"]

    # Nothing happened before today: a range in the past matches nothing.
    at.selectbox(key="audit.range").select("Custom dates").run()
    today = at.date_input(key="audit.dates").value[1]
    past = today.replace(year=today.year - 1)
    at.date_input(key="audit.dates").set_value((past, past)).run()
    assert not at.exception
    assert [i.value for i in at.info] == [
        "No event matches these filters: clear one, or widen the dates."
    ]


def test_verify_reports_an_intact_chain_then_the_first_altered_event(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = _count(demo_url)
    at = open_page(monkeypatch, demo_url, "audit.py", user="ada")
    at.button(key="audit.verify").click().run()
    assert [s.value for s in at.success] == [
        f"The audit chain is intact: {total:,} events verified."
    ]

    engine = engine_for(demo_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 5"))
        row = conn.execute(sa.text("SELECT id FROM audit_events WHERE seq = 5")).one()
    engine.dispose()
    at.button(key="audit.verify").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"The audit chain is broken at event #5 (id {row.id}): its content does not match its "
        "hash (altered). The 4 events before it verified."
    ]


def test_a_reviews_event_links_to_the_review(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent import reviews
    from agent.actors import Actor
    from storage.enums import ReviewStatus
    from storage.models import Review
    from tests.support.runtime import platform_for

    engine = engine_for(demo_url)
    with read_session(engine) as session:
        pending = session.exec(
            select(Review).where(col(Review.status) == ReviewStatus.PENDING)
        ).first()
    assert pending is not None and pending.id is not None
    reviews.approve(platform_for(engine), Actor.of("olga", ["operator"]), pending.id)
    engine.dispose()
    at = open_page(monkeypatch, demo_url, "audit.py", user="mona")
    at.selectbox(key="audit.target_type").select("review").run()
    events = _events(at)
    assert f"/queue?review={pending.id}" in set(events["open"])
    # Targets without a page of their own link nowhere.
    at.selectbox(key="audit.target_type").select("agent").run()
    assert _events(at)["open"].isna().all()
