"""Process-wide resources of the console, created once per server process and shared by sessions."""

from __future__ import annotations

import atexit
import logging
import threading

import streamlit as st
from sqlalchemy.engine import Engine

from agent.errors import ConfigurationError
from agent.platform import Platform
from agent.plugins import installed_registry
from agent.settings import check_settings, embedded_worker_enabled
from agent.telemetry.logs import configure_logging
from agent.telemetry.metrics import serve_metrics
from agent.worker import Worker
from storage.engine import check_connection, create_engine, database_url, sqlite_synchronous
from storage.errors import StorageError
from storage.migrate import require_head

log = logging.getLogger(__name__)


def engine() -> Engine:
    """The engine for the current ``STEWARD_DATABASE_URL``, shared by every browser session."""
    return _engine_for(*_settings())


def _settings() -> tuple[str, str]:
    """What the cached engine and worker are keyed by: the database URL and SQLite's level."""
    return database_url().render_as_string(hide_password=False), sqlite_synchronous()


@st.cache_resource(on_release=lambda engine: engine.dispose(), show_spinner=False)
def _engine_for(url: str, synchronous: str) -> Engine:
    # Keyed by the settings so that a changed configuration (or a test's database) gets its
    # own engine.
    return create_engine(url, synchronous=synchronous)


def platform() -> Platform:
    """The process's composition root on the current database: its engine, the installed
    tools, the shared HTTP client and compiled versions, shared by every browser session."""
    return _platform_for(*_settings())


@st.cache_resource(on_release=lambda platform: platform.close(), show_spinner=False)
def _platform_for(url: str, synchronous: str) -> Platform:
    return Platform(_engine_for(url, synchronous), installed_registry())


def startup_problem() -> str | None:
    """One sentence saying why the console cannot work now (a setting, or its database), or
    None if it can."""
    try:
        check_settings()
        current = engine()
        check_connection(current)
        require_head(current)
    except (ConfigurationError, StorageError) as exc:
        return str(exc)
    except Exception as exc:  # whatever the driver raises becomes one sentence
        log.warning("the database cannot be used", exc_info=True)
        return f"The database cannot be read ({type(exc).__name__}); check STEWARD_DATABASE_URL."
    return None


_process_lock = threading.Lock()
_process_worker: Worker | None = None


def start_process_worker() -> Worker | None:
    """Start the embedded worker as the server process starts (``console/server.py`` calls
    this from its lifespan), so that work starts when ``make run`` does, not when the first
    browser opens the console. None when ``STEWARD_EMBEDDED_WORKER=0``, or when the settings
    or the database are not usable yet (the console then says why to whoever opens it)."""
    global _process_worker  # noqa: PLW0603 - one worker per process, by design
    if not embedded_worker_enabled():
        return None
    with _process_lock:
        if _process_worker is not None:
            return _process_worker
        if (problem := startup_problem()) is not None:
            log.warning("the embedded worker did not start: %s", problem)
            return None
        _process_worker = _worker_for(*_settings())
        return _process_worker


def stop_process_worker() -> None:
    """Stop the worker ``start_process_worker`` started (the server's lifespan ends): its
    runs in progress keep their leases until they lapse, and its row records the stop."""
    with _process_lock:
        if _process_worker is not None:
            _process_worker.stop(wait=False)


def embedded_worker() -> Worker | None:
    """The one worker inside this console process (however many browser sessions are open),
    unless ``STEWARD_EMBEDDED_WORKER=0`` because workers run separately.

    Served by ``console/server.py`` it is the worker the process started with; served as
    ``streamlit run console/app.py`` it starts with the first browser session."""
    if not embedded_worker_enabled():
        return None
    return _process_worker or _worker_for(*_settings())


@st.cache_resource(on_release=lambda worker: worker.stop(wait=False), show_spinner=False)
def _worker_for(url: str, synchronous: str) -> Worker:
    worker = Worker(_platform_for(url, synchronous), concurrency=2, embedded=True)
    worker.start()
    atexit.register(worker.stop, wait=False)
    log.info("embedded worker %s started", worker.id)
    return worker


def process_telemetry() -> None:
    """Log lines as ``STEWARD_LOG_FORMAT`` asks, and ``/metrics`` on ``STEWARD_METRICS_PORT``
    (once per console process)."""
    settings = check_settings()
    _telemetry_for(*_settings(), settings.metrics_address, settings.otel_export)


@st.cache_resource(show_spinner=False)
def _telemetry_for(
    url: str, synchronous: str, address: tuple[str, int] | None, export: bool
) -> bool:
    configure_logging(logging.WARNING)
    if address is None:
        return False
    try:
        server, _ = serve_metrics(_engine_for(url, synchronous), address, export_backlog=export)
    except OSError:
        # The console goes on without metrics: people review and read whatever a scrape says.
        log.exception("STEWARD_METRICS_PORT: /metrics cannot be served on %s:%d", *address)
        return False
    atexit.register(server.shutdown)
    return True
