"""JSON log lines: one object a line, with the run, task and trace ids of the run being worked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from agent.telemetry import cursor
from agent.telemetry.ids import SpanIds
from agent.telemetry.logs import RunContextFilter, configure_logging, json_formatter, run_context


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Lines logged by ``steward.test`` as the JSON formatter writes them."""
    configure_logging(logging.WARNING, environ={"STEWARD_LOG_FORMAT": "json"})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RunContextFilter())
    logger = logging.getLogger("steward.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    configure_logging(logging.WARNING, environ={"STEWARD_LOG_FORMAT": "text"})


def test_lines_inside_a_run_carry_its_ids_and_its_trace(
    engine: Engine, json_lines: io.StringIO
) -> None:
    logger = logging.getLogger("steward.test")
    logger.info("before any run")
    with run_context(engine, 42, 7):
        logger.warning("tool %s answered %d", "pay", 503, extra={"tool": "pay"})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("the planner raised")
    logger.info("after the run")

    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "before any run",
        "tool pay answered 503",
        "the planner raised",
        "after the run",
    ]
    trace_id = f"{SpanIds(cursor.installation_key(engine)).trace(42):032x}"
    inside = lines[1]
    assert inside["run_id"] == 42 and inside["task_id"] == 7
    assert inside["trace_id"] == trace_id  # the id the run's spans are exported under
    assert inside["level"] == "WARNING" and inside["logger"] == "steward.test"
    assert inside["tool"] == "pay" and inside["time"].endswith("+00:00")
    assert lines[2]["run_id"] == 42 and "ValueError: boom" in lines[2]["exc_info"]
    assert "run_id" not in lines[0] and "run_id" not in lines[3]


def test_text_stays_the_default(engine: Engine) -> None:
    configure_logging(logging.WARNING, environ={})
    with run_context(engine, 1, 1):
        pass
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "steward", False)]
    assert len(handlers) == 1
    assert not isinstance(handlers[0].formatter, type(json_formatter()))
