"""Every page each demo role is shown opens on the seeded demo without an error or a traceback:
the walk a new user of each role takes through the navigation."""

from __future__ import annotations

import pytest

from tests.support.pages import open_page

# What the navigation shows each role (console/app.py's PAGES).
SHOWN = {
    "olga": ("queue.py", "runs.py", "tasks.py", "versions.py", "status.py"),
    "mona": (
        "queue.py",
        "runs.py",
        "tasks.py",
        "kpis.py",
        "versions.py",
        "evaluations.py",
        "audit.py",
        "status.py",
    ),
    "erin": ("runs.py", "tasks.py", "kpis.py", "versions.py", "evaluations.py", "status.py"),
    "ada": ("runs.py", "versions.py", "audit.py", "users.py", "status.py"),
}


@pytest.mark.parametrize(
    ("user", "page"), [(user, page) for user, pages in SHOWN.items() for page in pages]
)
def test_every_page_a_role_is_shown_opens_cleanly(
    demo_url: str, monkeypatch: pytest.MonkeyPatch, user: str, page: str
) -> None:
    at = open_page(
        monkeypatch,
        demo_url,
        page,
        user=user,
        state={"versions.agent": "support", "evals.agent": "support"},
    )
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    assert at.title, f"{page} shows no title to {user}"


# Pages the navigation does not show each role, opened by address (a shared link, say).
FORBIDDEN = {
    "olga": ("kpis.py", "evaluations.py", "audit.py", "users.py"),
    "erin": ("queue.py", "audit.py", "users.py"),
    "ada": ("queue.py", "tasks.py", "kpis.py", "evaluations.py"),
}


@pytest.mark.parametrize(
    ("user", "page"), [(user, page) for user, pages in FORBIDDEN.items() for page in pages]
)
def test_a_page_a_role_may_not_open_says_why(
    demo_url: str, monkeypatch: pytest.MonkeyPatch, user: str, page: str
) -> None:
    at = open_page(monkeypatch, demo_url, page, user=user)
    assert not at.exception, at.exception
    [warning] = [w.value for w in at.warning]
    assert f"you are signed in as {user} (" in warning
    assert " role; " in warning and "Ask an admin for the role" in warning
    # Nothing of the page itself is drawn.
    assert not at.dataframe
