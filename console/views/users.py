"""Users for admins: add accounts (typed or generated password), set roles, disable, enable.

A generated password is shown exactly once, on the page that follows the account's creation,
and is dropped from session state as it is shown.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from agent.actors import Actor
from agent.auth import generate_password
from agent.reads.paging import MAX_LIMIT
from agent.users import UserInfo, add_user, disable_user, enable_user, list_users, set_roles
from console.resources import platform
from console.session import require_user
from console.widgets.feedback import REPORTED, attempt, report
from storage.enums import Role

FLASH = "users.flash"
CONFIRM = "users.confirm_disable"
ROLES = [role.value for role in Role]
# The add form's fields and their empty values: set (not deleted) on the run after an account
# is added, so the browser's fields are emptied too (a deleted widget value comes back from the
# browser with the next rerun).
ADD_FIELDS: dict[str, object] = {
    "users.name": "",
    "users.display_name": "",
    "users.email": "",
    "users.roles": [],
    "users.password": "",
    "users.generate": False,
}
CLEAR_ADD_FORM = "users.clear_add_form"


def status(user: UserInfo) -> str:
    if user.disabled:
        return "disabled"
    if user.locked_until is not None or user.failed_logins:
        return f"locked ({user.failed_logins} failed sign-ins)"
    return "enabled"


def users_frame(users: tuple[UserInfo, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "name": u.name,
                "display name": u.display_name,
                "email": u.email or "",
                "roles": ", ".join(role.value for role in u.roles),
                "status": status(u),
                "password": "set" if u.has_password else "single sign-on only",
                "last sign-in": u.last_login_at,
                "created": u.created_at,
            }
            for u in users
        ]
    )


def change(message: str, action: Callable[[], object]) -> None:
    """Call the service ``action``; on success flash ``message`` and rerun."""
    try:
        action()
    except REPORTED as exc:
        report(exc)
        return
    st.session_state[FLASH] = {"message": message}
    st.rerun()


def forget_confirmation() -> None:
    st.session_state.pop(CONFIRM, None)


@st.dialog("Disable an account", on_dismiss=forget_confirmation)
def confirm_disable(actor: Actor, name: str) -> None:
    st.markdown(
        f"Disable **{name}**? They are signed out at once and cannot sign in or act; their "
        "history stays, and an admin can enable the account again."
    )
    left, right = st.columns(2)
    if left.button("Disable", type="primary", key="users.disable_yes"):
        forget_confirmation()
        change(
            f"{name} is disabled.",
            lambda: disable_user(platform(), actor, name),
        )
    if right.button("Cancel", key="users.disable_no"):
        forget_confirmation()
        st.rerun()


def add_panel(actor: Actor) -> None:
    st.subheader("Add a user")
    if st.session_state.pop(CLEAR_ADD_FORM, False):
        for key, empty in ADD_FIELDS.items():
            st.session_state[key] = empty
    with st.form("users.add_form"):
        left, right = st.columns(2)
        name = left.text_input("User name", key="users.name", help="a-z, 0-9, '_', '.', '-'")
        display = right.text_input("Display name", key="users.display_name")
        email = left.text_input("Email (for single sign-on)", key="users.email")
        roles = right.multiselect("Roles", ROLES, key="users.roles")
        password = left.text_input("Password", type="password", key="users.password")
        generate = right.checkbox("Generate a password (shown once)", key="users.generate")
        submitted = st.form_submit_button("Add user", type="primary", key="users.add")
    st.caption("Leave the password empty for an account that signs in only through single sign-on.")
    if not submitted:
        return
    secret = generate_password() if generate else (password or None)

    try:
        add_user(
            platform(),
            actor,
            name.strip(),
            roles,
            password=secret,
            email=email,
            display_name=display,
        )
    except REPORTED as exc:
        report(exc, prefix="The user was not added. ")
        return
    st.session_state[CLEAR_ADD_FORM] = True
    st.session_state[FLASH] = {
        "message": f"Added {name.strip()} ({', '.join(sorted(roles))}).",
        "password": secret if generate else None,
        "name": name.strip(),
    }
    st.rerun()


def sync_roles(roles_by_name: dict[str, list[str]]) -> None:
    """Selectbox callback: show the newly selected user's roles in the roles control."""
    chosen = st.session_state.get("users.selected")
    st.session_state["users.edit_roles"] = roles_by_name.get(str(chosen), [])


def edit_panel(actor: Actor, users: tuple[UserInfo, ...]) -> None:
    st.subheader("Roles and access")
    by_name = {u.name: u for u in users}
    roles_by_name = {u.name: [r.value for r in u.roles] for u in users}
    names = list(by_name)
    if st.session_state.get("users.selected") not in by_name:
        st.session_state["users.selected"] = names[0]
        st.session_state["users.edit_roles"] = roles_by_name[names[0]]
    st.session_state.setdefault("users.edit_roles", roles_by_name[names[0]])
    name = str(
        st.selectbox(
            "User", names, key="users.selected", on_change=sync_roles, args=(roles_by_name,)
        )
    )
    user = by_name[name]
    with st.form("users.roles_form"):
        new_roles = st.multiselect("Roles", ROLES, key="users.edit_roles")
        save = st.form_submit_button("Save roles", key="users.save_roles")
    if save:
        change(
            f"{name} now holds {', '.join(sorted(new_roles)) or 'no role'}.",
            lambda: set_roles(platform(), actor, name, new_roles),
        )
    if user.disabled or user.locked_until is not None or user.failed_logins:
        label = "Enable" if user.disabled else "Unlock"
        if st.button(f"{label} {name}", key="users.enable", icon=":material/lock_open:"):
            change(
                f"{name} can sign in again.",
                lambda: enable_user(platform(), actor, name),
            )
    if not user.disabled and st.button(
        f"Disable {name}…", key="users.disable", icon=":material/block:"
    ):
        st.session_state[CONFIRM] = name
    if st.session_state.get(CONFIRM) == name:
        confirm_disable(actor, name)


st.title("Users")
actor = require_user()
flash = st.session_state.pop(FLASH, None)
if isinstance(flash, dict):
    st.success(flash["message"], icon=":material/check_circle:")
    if flash.get("password"):
        st.warning(
            f"The password of {flash['name']} is shown only this once; pass it on securely.",
            icon=":material/key:",
        )
        st.code(flash["password"], language=None)

page = attempt(lambda: list_users(platform(), actor, limit=MAX_LIMIT))
if page is None:
    st.stop()
users = page.items
st.dataframe(users_frame(users), hide_index=True, key="users.list")
if page.has_more:
    st.caption(f"The first {len(users):,} of {page.total:,} users, by name.")
add_panel(actor)
if users:
    edit_panel(actor, users)
