"""The users view: add accounts (a generated password shown once), refuse bad input, set roles,
disable after confirmation, enable again, and never disable the last admin."""

from __future__ import annotations

import pytest
from sqlmodel import select

from agent.auth import authenticate
from agent.errors import AuthenticationFailed
from storage.engine import read_session
from storage.models import User
from tests.support.console import engine_for
from tests.support.pages import open_page
from tests.support.runtime import platform_for


def _user(url: str, name: str) -> User | None:
    engine = engine_for(url)
    with read_session(engine) as session:
        user = session.exec(select(User).where(User.name == name)).first()
    engine.dispose()
    return user


def _add(at, name: str, roles: list[str], **fields: str) -> None:  # type: ignore[no-untyped-def]
    at.text_input(key="users.name").input(name)
    for role in roles:
        at.multiselect(key="users.roles").select(role)
    for key, value in fields.items():
        at.text_input(key=f"users.{key}").input(value)
    at.button(key="users.add").click().run()
    assert not at.exception


def test_add_with_a_generated_password_shown_once(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, demo_url, "users.py", user="ada")
    at.checkbox(key="users.generate").check()
    _add(at, "zoe", ["operator", "manager"], email="Zoe@Example.com", display_name="Zoe Q")
    assert [s.value for s in at.success] == ["Added zoe (manager, operator)."]
    (password,) = [c.value for c in at.code]
    user = _user(demo_url, "zoe")
    assert user is not None
    assert (sorted(user.roles), user.email, user.display_name) == (
        ["manager", "operator"],
        "zoe@example.com",
        "Zoe Q",
    )
    engine = engine_for(demo_url)
    assert authenticate(platform_for(engine), "zoe", password).name == "zoe"
    engine.dispose()
    listed = next(df.value for df in at.dataframe if df.value.columns[0] == "name")
    assert "zoe" in set(listed["name"])
    # Shown once: the next rerun no longer holds it, on the page or in session state.
    at.run()
    assert not at.code
    assert password not in str(at.session_state)


def test_add_with_a_typed_password_and_refusals(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, demo_url, "users.py", user="ada")
    _add(at, "yan", ["engineer"], password="a-long-secret")
    engine = engine_for(demo_url)
    assert authenticate(platform_for(engine), "yan", "a-long-secret").roles == {"engineer"}
    engine.dispose()
    assert not at.code  # a typed password is never shown back
    # The form is empty for the next account: no name or password left behind.
    assert at.text_input(key="users.name").value == ""
    assert at.text_input(key="users.password").value == ""
    assert at.multiselect(key="users.roles").value == []

    # A refused account keeps what was typed, to be corrected.
    _add(at, "Bad Name", ["operator"], password="a-long-secret")
    assert at.error
    assert at.text_input(key="users.name").value == "Bad Name"
    assert at.text_input(key="users.password").value == "a-long-secret"

    for name, roles, fields, problem in (
        ("Bad Name", ["operator"], {}, "must be 1-64 characters"),
        ("yan", ["operator"], {}, "a user named 'yan' already exists"),
        ("xia", [], {}, "needs at least one role"),
        ("xia", ["operator"], {"password": "short"}, "at least"),
        ("xia", ["operator"], {"email": "not-an-email"}, "is not an email address"),
    ):
        at = open_page(monkeypatch, demo_url, "users.py", user="ada")
        _add(at, name, roles, **fields)
        (message,) = [e.value for e in at.error]
        assert message.startswith("The user was not added. ")
        assert problem in message.lower()
    assert _user(demo_url, "xia") is None
    assert _user(demo_url, "Bad Name") is None


def test_set_roles_disable_and_enable(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, demo_url, "users.py", user="ada")
    at.selectbox(key="users.selected").select("oscar").run()
    assert at.multiselect(key="users.edit_roles").value == ["operator"]
    at.multiselect(key="users.edit_roles").select("manager")
    at.button(key="users.save_roles").click().run()
    assert [s.value for s in at.success] == ["oscar now holds manager, operator."]
    oscar = _user(demo_url, "oscar")
    assert oscar is not None
    assert sorted(oscar.roles) == ["manager", "operator"]

    at.button(key="users.disable").click().run()
    at.button(key="users.disable_no").click().run()
    oscar = _user(demo_url, "oscar")
    assert oscar is not None
    assert not oscar.disabled
    at.button(key="users.disable").click().run()
    at.button(key="users.disable_yes").click().run()
    assert not at.exception
    oscar = _user(demo_url, "oscar")
    assert oscar is not None
    assert oscar.disabled
    engine = engine_for(demo_url)
    with pytest.raises(AuthenticationFailed):
        authenticate(platform_for(engine), "oscar", "oscar-steward-demo")
    at.button(key="users.enable").click().run()
    assert authenticate(platform_for(engine), "oscar", "oscar-steward-demo").name == "oscar"
    engine.dispose()


def test_the_last_admin_cannot_be_disabled(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, demo_url, "users.py", user="ada")
    at.selectbox(key="users.selected").select("ada").run()
    at.button(key="users.disable").click().run()
    at.button(key="users.disable_yes").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Cannot disable ada: it would leave no enabled admin."]
    ada = _user(demo_url, "ada")
    assert ada is not None
    assert not ada.disabled
