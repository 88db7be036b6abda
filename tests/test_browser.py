"""One real browser walks the operator's main path end to end.

The console runs as ``streamlit run`` in a subprocess, on a copy of the seeded demo, with its
embedded worker on; Debian's Chromium drives it. An operator signs in, stays signed in across a
reload and a second tab, opens the oldest pending refund, approves it, follows the link to its
run and watches the run succeed; signing out in one tab ends the other.

Chromium comes from the system (``apt-get install chromium``), never from a browser download.
Without it the test is skipped locally and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from storage.engine import read_session
from storage.enums import ReviewStatus, RunStatus
from storage.models import Review, Run
from tests.support.console import engine_for
from tests.support.server import serve_console

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
STEP_MS = 30_000


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message + "; CI=true: the browser test must run")
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def console(demo_url: str, tmp_path: Path) -> Iterator[str]:
    """The console serving ``demo_url`` as ``make run`` does, its worker embedded."""
    with serve_console(demo_url, tmp_path / "console.log") as url:
        yield url


def _sign_in(page: Any, name: str) -> None:
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(f"{name}-steward-demo")
    page.get_by_role("button", name="Sign in").click()


def _wait_for_session_cookie(context: Any) -> None:
    """Until the browser holds the HTTP-only session cookie the sign-in's script asked for."""
    deadline = time.monotonic() + STEP_MS / 1000
    while time.monotonic() < deadline:
        cookies = [c for c in context.cookies() if c["name"] == "steward_session"]
        if cookies:
            assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
            return
        time.sleep(0.1)
    raise AssertionError("the browser never received the session cookie")


def test_operator_approves_the_oldest_refund_and_sees_its_run_succeed(
    console: str, demo_url: str, chromium: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    engine = engine_for(demo_url)
    with read_session(engine) as session:
        refund = session.exec(
            select(Review)
            .where(col(Review.kind) == "escalation")
            .where(col(Review.tool) == "issue_refund")
            .where(col(Review.status) == ReviewStatus.PENDING)
            .order_by(col(Review.created_at))
        ).first()
    assert refund is not None
    assert refund.id is not None

    with sync_playwright() as playwright:
        # Running as root (containers, CI) needs Chromium's sandbox off.
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1200})
            context.set_default_timeout(STEP_MS)
            page = context.new_page()
            errors: list[str] = []
            # Script errors on the page. Resources that fail to load are left out: the page
            # icon comes from fonts.gstatic.com, which a machine without internet cannot reach,
            # and a reload cancels the scripts still loading.
            page.on(
                "console",
                lambda m: (
                    errors.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource")
                    else None
                ),
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(console)
            _sign_in(page, "olga")
            expect(page.get_by_role("heading", name="Review queue")).to_be_visible()

            # Staying signed in: a reload and a second tab open on the queue, not the form.
            _wait_for_session_cookie(context)
            page.reload()
            expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
            second = context.new_page()
            second.goto(f"{console}/runs")
            expect(second.get_by_role("heading", name="Runs")).to_be_visible()
            expect(second.get_by_text("runs match")).to_be_visible()
            # The cookie is out of every script's reach.
            assert "steward_session" not in str(page.evaluate("document.cookie"))

            page.get_by_role("combobox", name="Open a review").click()
            # The list is virtualised and may open beyond the viewport: typing narrows it to
            # the wanted review, and Enter picks the one match.
            page.keyboard.type(f"#{refund.id} · escalation · issue_refund")
            expect(
                page.get_by_role("option", name=f"#{refund.id} · escalation · issue_refund")
            ).to_have_count(1)
            page.keyboard.press("Enter")
            expect(
                page.get_by_role("heading", name=f"Review {refund.id}: escalation of issue_refund")
            ).to_be_visible()
            expect(page.get_by_text("Evidence: the policy's decision")).to_be_visible()
            page.get_by_role("button", name="Approve", exact=True).click()
            expect(
                page.get_by_text(f"Review {refund.id} approved by olga; the run resumes.")
            ).to_be_visible()

            page.get_by_role("link", name=f"Open run {refund.run_id}").click()
            expect(page.get_by_text(f"Run {refund.run_id}: support v1")).to_be_visible()
            # The run view follows a running run live until it ends.
            status = page.get_by_test_id("stMetric").filter(has_text="Status")
            expect(status).to_contain_text("succeeded", timeout=90_000)
            expect(page.get_by_text("The answer meets the output contract.")).to_be_visible()
            # Its waterfall is drawn above the timeline.
            expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible()
            # The navigation's Runs link leaves the run for the list.
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Runs").click()
            expect(page.get_by_text("runs match")).to_be_visible()

            # A link followed in the same browser opens signed in, at the run.
            second.goto(f"{console}/runs?run={refund.run_id}")
            expect(second.get_by_text(f"Run {refund.run_id}: support v1")).to_be_visible()

            # Signing out in one tab ends the other: its next step asks for a sign-in, and a
            # reload does not bring the session back.
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("textbox", name="Name")).to_be_visible()
            second.get_by_test_id("stSidebarNav").get_by_role("link", name="Runs").click()
            expect(second.get_by_role("textbox", name="Name")).to_be_visible()
            second.reload()
            expect(second.get_by_role("textbox", name="Name")).to_be_visible()
            page.reload()
            expect(page.get_by_role("textbox", name="Name")).to_be_visible()
            assert errors == [], errors
            context.close()

            # Another browser (no cookie) asks for a sign-in at the run's own address, then
            # shows that run.
            fresh = browser.new_page(viewport={"width": 1440, "height": 1200})
            fresh.set_default_timeout(STEP_MS)
            fresh.goto(f"{console}/runs?run={refund.run_id}")
            _sign_in(fresh, "olga")
            expect(fresh.get_by_text(f"Run {refund.run_id}: support v1")).to_be_visible()
        finally:
            browser.close()

    with read_session(engine) as session:
        run = session.get(Run, refund.run_id)
        decided = session.get(Review, refund.id)
    engine.dispose()
    assert run is not None
    assert run.status is RunStatus.SUCCEEDED
    assert decided is not None
    assert (decided.status, decided.decided_by) == (ReviewStatus.APPROVED, "olga")
    # No warning or traceback in the server's log (the first Runs view used to warn).
    log = (tmp_path / "console.log").read_text()
    assert "Traceback" not in log and "was created with a default value" not in log, log
