"""Log lines as JSON objects (``STEWARD_LOG_FORMAT=json``) that carry run, task and trace ids.

The worker opens a ``run_context`` around each run it processes; every line logged inside it,
by Steward or a library, carries the run's id, its task's id and (in JSON) the id of the trace
the run is exported as, so a log line and its trace join in any backend. The JSON lines are
written by python-json-logger.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter
from sqlalchemy.engine import Engine

from agent.telemetry import config
from agent.telemetry.cursor import installation_key
from agent.telemetry.ids import SpanIds, hex_trace_id

_RUN: ContextVar[Mapping[str, Any] | None] = ContextVar("steward_run", default=None)
_IDS: dict[str, SpanIds] = {}
_JSON = {"enabled": False}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def run_context(engine: Engine, run_id: int, task_id: int | None = None) -> Iterator[None]:
    """Every line logged inside carries ``run_id``, ``task_id`` and, in JSON, ``trace_id``."""
    ids: dict[str, Any] = {"run_id": run_id}
    if task_id:
        ids["task_id"] = task_id
    if _JSON["enabled"]:
        ids["trace_id"] = hex_trace_id(_span_ids(engine).trace(run_id))
    token = _RUN.set(ids)
    try:
        yield
    finally:
        _RUN.reset(token)


def _span_ids(engine: Engine) -> SpanIds:
    key = engine.url.render_as_string(hide_password=True)
    found = _IDS.get(key)
    if found is None:
        found = _IDS[key] = SpanIds(installation_key(engine))
    return found


class RunContextFilter(logging.Filter):
    """Adds the current run's ids to each record (as attributes a formatter may print)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _RUN.get()
        if ids:
            for name, value in ids.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, the run's ids and
    any ``extra`` fields; an exception's traceback as ``exc_info``."""
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def configure_logging(
    level: int = logging.WARNING, *, environ: Mapping[str, str] | None = None
) -> None:
    """Log to standard error at ``level``, as text or JSON (``STEWARD_LOG_FORMAT``).

    Raises:
        ConfigurationError: the format is neither text nor json.
    """
    as_json = config.log_format(environ) == "json"
    _JSON["enabled"] = as_json
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if as_json else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RunContextFilter())
    root = logging.getLogger()
    for existing in [h for h in root.handlers if getattr(h, "steward", False)]:
        root.removeHandler(existing)
    handler.steward = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
