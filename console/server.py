"""The console's server: Streamlit's ASGI app around ``console/app.py``. It starts the embedded
worker with the process (not with the first browser) and serves the two routes that set and
drop the HTTP-only session cookie.

``make run`` serves this file (``streamlit run console/server.py``); Streamlit finds ``app``
and runs it under uvicorn. ``st.App`` (Streamlit 1.53+) is the supported way to run code at
server start and to answer plain HTTP requests next to the app. A Streamlit script cannot do
either: it runs only when a browser connects, and it talks over a websocket, which can read
cookies (``st.context.cookies``) but never set one. ``st.login`` sets its own cookie, but only
for an OpenID Connect provider, not for local accounts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import streamlit as st
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from agent.sessions import COOKIE, redeem_grant
from console.resources import platform, start_process_worker, stop_process_worker
from console.session import SESSION_ROUTE, SIGN_OUT_ROUTE


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    # The worker's writes happen in a thread, off the server's event loop.
    await anyio.to_thread.run_sync(start_process_worker)
    yield
    await anyio.to_thread.run_sync(stop_process_worker)


async def set_session_cookie(request: Request) -> Response:
    """Redeem a sign-in's one-time grant for the session cookie (``console.session``)."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = {}
    grant = body.get("grant") if isinstance(body, dict) else None
    if not isinstance(grant, str):
        return PlainTextResponse("The request names no sign-in grant.", status_code=400)
    redeemed = await anyio.to_thread.run_sync(lambda: redeem_grant(platform(), grant))
    if redeemed is None:
        return PlainTextResponse(
            "This sign-in grant was used or has expired; sign in again.", status_code=400
        )
    value, lifetime = redeemed
    response = Response(status_code=204)
    # HTTP-only: no script reads it. Strict: no other site's page sends it (the console's own
    # websocket does). Secure whenever the console is served over HTTPS.
    response.set_cookie(
        COOKIE,
        value,
        max_age=lifetime,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def drop_session_cookie(request: Request) -> Response:
    """Drop the session cookie after a sign-out (the session itself is already revoked)."""
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


app = st.App(
    "app.py",
    lifespan=lifespan,
    routes=[
        Route(SESSION_ROUTE, set_session_cookie, methods=["POST"]),
        Route(SIGN_OUT_ROUTE, drop_session_cookie, methods=["POST"]),
    ],
)
