"""Open the console straight on one page, as one user, for the manager/engineer/admin views.

``tests.support.console.open_console`` first renders the user's default page (the queue for a
manager) and then switches; these views' tests go to their page directly, so the outcome of a
test depends on the view under test alone.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.console import APP


def open_page(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    page: str,
    *,
    user: str,
    state: dict[str, object] | None = None,
) -> AppTest:
    """Run ``console/app.py`` on ``url`` signed in as ``user``, showing ``views/{page}``.

    ``state`` seeds session state before the first run (a widget's remembered value, say).
    """
    monkeypatch.setenv("STEWARD_DATABASE_URL", url)
    monkeypatch.setenv("STEWARD_EMBEDDED_WORKER", "0")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth.user"] = {"name": user}
    for key, value in (state or {}).items():
        at.session_state[key] = value
    # The router names each page after its file, so the page is found before the first run.
    at.switch_page(f"views/{page}")
    at.run()
    assert not at.exception, at.exception
    return at
