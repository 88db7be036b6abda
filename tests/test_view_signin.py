"""Sign-in: local accounts, one failure message, navigation by role, sign-out."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from storage.engine import read_session
from storage.models import AuditEvent, User
from tests.support.console import engine_for, open_console


def _sign_in(at, name: str, password: str):  # type: ignore[no-untyped-def]
    at.text_input(key="signin.name").input(name)
    at.text_input(key="signin.password").input(password)
    at.button[0].click()  # the form's submit button
    return at.run()


def _page_titles(at) -> list[str]:  # type: ignore[no-untyped-def]
    return [entry.title for entry in at._tree.children]  # pragma: no cover


def test_operator_signs_in_and_sees_only_operator_pages(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_console(monkeypatch, demo_url)
    assert at.title[0].value == "Steward"
    at = _sign_in(at, "olga", "olga-steward-demo")
    assert not at.exception
    assert at.session_state["auth.user"]["name"] == "olga"
    engine = engine_for(demo_url)
    with read_session(engine) as session:
        user = session.exec(select(User).where(User.name == "olga")).one()
        assert user.last_login_at is not None
        logins = session.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "user.login")
        ).all()
    assert [event.actor for event in logins] == ["olga"]
    engine.dispose()


def test_wrong_password_says_so_without_saying_which_half(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_console(monkeypatch, demo_url)
    at = _sign_in(at, "olga", "not-the-password")
    wrong_password = at.error[0].value
    at = _sign_in(at, "nobody", "not-the-password")
    unknown_user = at.error[0].value
    assert wrong_password == unknown_user
    assert "name or password is wrong" in wrong_password
    assert "auth.user" not in at.session_state
    assert at.session_state["signin.failures"] == 2


def test_sign_out_forgets_the_user(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_console(monkeypatch, demo_url, user="mona")
    at.button(key="auth.sign_out").click().run()
    assert not at.exception
    assert "auth.user" not in at.session_state
    assert at.title[0].value == "Steward"


def test_a_sign_in_opens_a_session_that_ends_when_the_account_is_disabled(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.actors import Actor
    from agent.users import disable_user
    from storage.models import UserSession
    from tests.support.runtime import platform_for

    at = _sign_in(open_console(monkeypatch, demo_url), "olga", "olga-steward-demo")
    assert not at.exception
    session_id = at.session_state["auth.user"]["session"]
    engine = engine_for(demo_url)
    with read_session(engine) as session:
        row = session.get(UserSession, session_id)
    assert row is not None and row.grant_hash is not None and row.token_hash is None
    # The page asks the browser to redeem the grant at the server's cookie route.
    scripts = [e for e in at.main if e.type == "html"] + [e for e in at.sidebar if e.type == "html"]
    assert len(scripts) == 1
    assert "/auth/session" in scripts[0].proto.body  # type: ignore[attr-defined]
    assert "auth.grant" not in at.session_state

    disable_user(platform_for(engine), Actor.of("ada", ["admin"]), "olga")
    engine.dispose()
    at.run()
    assert not at.exception
    assert "auth.user" not in at.session_state
    assert at.text_input(key="signin.name")
    # The browser is asked to drop the dead cookie.
    dropped = [e for e in at.main if e.type == "html"]
    assert len(dropped) == 1
    assert "/auth/signout" in dropped[0].proto.body  # type: ignore[attr-defined]
