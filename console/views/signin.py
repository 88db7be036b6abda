"""Sign-in: local accounts by name and password, and single sign-on when OIDC is configured."""

from __future__ import annotations

import time

import streamlit as st

from agent.auth import authenticate, authenticate_email
from agent.errors import AuthenticationFailed
from console.resources import platform
from console.session import oidc_configured, oidc_signed_in, sign_in

FAILURES_KEY = "signin.failures"
# Each failure in this browser session doubles the wait before the answer, up to the cap; the
# account lockout in ``agent.auth`` is what stops a guesser who opens new sessions.
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 4.0


st.title("Steward")
st.caption("Operations console for governed AI agents")

if oidc_signed_in():
    email = st.user.get("email")
    try:
        if not isinstance(email, str) or not email:
            raise AuthenticationFailed("the identity provider did not share an email address.")
        sign_in(authenticate_email(platform(), email))
        st.rerun()
    except AuthenticationFailed as exc:
        st.error(f"Single sign-on worked, but {exc}")
        if st.button("Sign out of the identity provider", key="signin.oidc_logout"):
            st.logout()

with st.form("signin.form"):
    name = st.text_input("Name", key="signin.name")
    password = st.text_input("Password", type="password", key="signin.password")
    submitted = st.form_submit_button("Sign in", type="primary")

if submitted:
    st.session_state.setdefault(FAILURES_KEY, 0)
    try:
        actor = authenticate(platform(), name.strip(), password)
    except AuthenticationFailed as exc:
        st.session_state[FAILURES_KEY] += 1
        failures = st.session_state[FAILURES_KEY]
        time.sleep(min(BACKOFF_BASE_S * 2 ** (failures - 1), BACKOFF_CAP_S))
        st.error(str(exc).capitalize())
    else:
        st.session_state.pop(FAILURES_KEY, None)
        sign_in(actor)
        st.rerun()

if oidc_configured():
    st.divider()
    if st.button("Sign in with single sign-on", key="signin.oidc", icon=":material/key:"):
        st.login()
