"""The console's server: Streamlit's ASGI app around ``console/app.py``, which starts the
embedded worker with the process (not with the first browser) and serves the sign-in cookie
routes.

``make run`` serves this file (``streamlit run console/server.py``); Streamlit finds ``app``
and runs it under uvicorn. ``st.App`` (Streamlit 1.53+) is the supported way to run code at
server start and to answer plain HTTP requests next to the app; a script run has neither.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import streamlit as st

from console.resources import start_process_worker, stop_process_worker


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    # The worker's writes happen in a thread, off the server's event loop.
    await anyio.to_thread.run_sync(start_process_worker)
    yield
    await anyio.to_thread.run_sync(stop_process_worker)


app = st.App("app.py", lifespan=lifespan)
