"""Who is signed in to this browser session: the ``current_user()`` seam views and tests share.

Session state holds only plain data (a name and role names); the roles are read again from the
users table on every rerun, so disabling an account or changing its roles takes effect at once.
"""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from agent.actors import Actor
from agent.errors import ServiceError
from agent.users import actor_for
from console.resources import platform

log = logging.getLogger(__name__)

USER_KEY = "auth.user"


def current_user() -> Actor | None:
    """The signed-in actor with the roles the database holds now, or None.

    Tests sign a user in with ``at.session_state["auth.user"] = {"name": "olga"}``.
    """
    stored: Any = st.session_state.get(USER_KEY)
    if not isinstance(stored, dict) or not stored.get("name"):
        return None
    try:
        return actor_for(platform(), str(stored["name"]))
    except ServiceError as exc:
        # Disabled or deleted since sign-in: the session ends here.
        log.info("signing %s out: %s", stored.get("name"), exc)
        sign_out()
        return None


def sign_in(actor: Actor) -> None:
    """Remember ``actor`` for this browser session."""
    st.session_state[USER_KEY] = {"name": actor.name, "roles": sorted(r.value for r in actor.roles)}


def sign_out() -> None:
    """Forget the signed-in user and everything the views kept for them."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def oidc_configured() -> bool:
    """Whether ``[auth]`` single sign-on settings exist in ``.streamlit/secrets.toml``."""
    return st.secrets.load_if_toml_exists() and "auth" in st.secrets


def oidc_signed_in() -> bool:
    """Whether the identity provider has signed this browser session in."""
    return oidc_configured() and bool(st.user.get("is_logged_in", False))


def require_user() -> Actor:
    """The signed-in actor; stops the page when nobody is (the router normally prevents it)."""
    actor = current_user()
    if actor is None:
        st.warning("Sign in to use this page.")
        st.stop()
    return actor
