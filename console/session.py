"""Who is signed in to this browser session: the ``current_user()`` seam views and tests share.

A sign-in opens a server-side session (``agent.sessions``) and hands the browser a one-time
grant, which a small script redeems at ``/auth/session`` (``console/server.py``) for an
HTTP-only cookie. A reload, a second tab or a followed link starts a new Streamlit session that
finds no one in its session state: it presents that cookie and resumes the session. Every rerun
checks the session row again, so a sign-out in another tab, a disabled account or changed roles
end this one too; the roles are read from the users table each time.

Session state holds only plain data (a name, role names and the session id). Tests sign a user
in with ``at.session_state["auth.user"] = {"name": "olga"}``: without a session id the roles are
read from the users table on every rerun, as before sessions existed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import streamlit as st

from agent import sessions
from agent.actors import Actor
from agent.errors import ServiceError
from agent.users import actor_for
from console.resources import platform

log = logging.getLogger(__name__)

USER_KEY = "auth.user"
GRANT_KEY = "auth.grant"
DROP_COOKIE_KEY = "auth.drop_cookie"
SESSION_ROUTE = "/auth/session"
SIGN_OUT_ROUTE = "/auth/signout"


def current_user() -> Actor | None:
    """The signed-in actor with the roles the database holds now, or None.

    Tests sign a user in with ``at.session_state["auth.user"] = {"name": "olga"}``.
    """
    stored: Any = st.session_state.get(USER_KEY)
    if isinstance(stored, dict) and stored.get("name"):
        return _signed_in(stored)
    return _resumed_from_cookie()


def _signed_in(stored: dict[str, Any]) -> Actor | None:
    session_id = stored.get("session")
    if session_id is not None:
        resumed = sessions.check(platform(), int(session_id))
        if resumed is None:
            # Signed out elsewhere, timed out, disabled or given other roles: the browser
            # drops the dead cookie too.
            log.info("session %s of %s ended", session_id, stored.get("name"))
            _forget()
            st.session_state[DROP_COOKIE_KEY] = True
            return None
        return resumed.actor
    try:
        return actor_for(platform(), str(stored["name"]))
    except ServiceError as exc:
        # Disabled or deleted since sign-in: the session ends here.
        log.info("signing %s out: %s", stored.get("name"), exc)
        _forget()
        return None


def _resumed_from_cookie() -> Actor | None:
    cookie = st.context.cookies.get(sessions.COOKIE)
    if not cookie:
        return None
    resumed = sessions.resume(platform(), cookie)
    if resumed is None:
        return None
    _remember(resumed.actor, resumed.session_id)
    return resumed.actor


def _remember(actor: Actor, session_id: int) -> None:
    st.session_state[USER_KEY] = {
        "name": actor.name,
        "roles": sorted(r.value for r in actor.roles),
        "session": session_id,
    }


def sign_in(actor: Actor) -> None:
    """Remember ``actor`` for this browser session and open a session that outlives it (the
    cookie is set by ``deliver_session_cookie`` on the next run)."""
    session_id, grant = sessions.open_session(platform(), actor)
    _remember(actor, session_id)
    st.session_state[GRANT_KEY] = grant


def deliver_session_cookie() -> None:
    """After a sign-in, have the browser redeem its one-time grant for the HTTP-only session
    cookie. A script must do it: a Streamlit session talks over a websocket, which cannot set
    a cookie, so the browser asks the server's own route, whose answer sets it. The grant is
    useless once redeemed or after two minutes; the cookie's value never reaches a script."""
    grant = st.session_state.pop(GRANT_KEY, None)
    if not isinstance(grant, str):
        return
    body = json.dumps({"grant": grant})
    st.html(
        f"""<script>
fetch({json.dumps(SESSION_ROUTE)}, {{method: "POST", credentials: "same-origin",
  headers: {{"Content-Type": "application/json"}}, body: {json.dumps(body)}}});
</script>""",
        unsafe_allow_javascript=True,
    )


def sign_out() -> None:
    """End the session everywhere (every tab sharing it is signed out at its next rerun) and
    forget everything the views kept; the browser drops its cookie on the next run."""
    stored: Any = st.session_state.get(USER_KEY)
    if isinstance(stored, dict) and stored.get("session") is not None:
        sessions.revoke(platform(), int(stored["session"]))
    _forget()
    st.session_state[DROP_COOKIE_KEY] = True


def drop_session_cookie() -> None:
    """After a sign-out, have the browser drop its (now revoked) session cookie."""
    if not st.session_state.pop(DROP_COOKIE_KEY, False):
        return
    st.html(
        f"""<script>
fetch({json.dumps(SIGN_OUT_ROUTE)}, {{method: "POST", credentials: "same-origin"}});
</script>""",
        unsafe_allow_javascript=True,
    )


def _forget() -> None:
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
