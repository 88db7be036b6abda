"""The telemetry settings: checked with every other setting, one sentence naming the variable."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from agent.errors import ConfigurationError
from agent.settings import check_settings
from agent.telemetry import config
from tests.support.cli import refused, steward


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    return {"STEWARD_DATABASE_URL": f"sqlite:///{tmp_path / 'steward.db'}", **settings}


def test_telemetry_is_off_by_default(tmp_path: Path) -> None:
    settings = check_settings(_env(tmp_path))
    assert settings.otel_export is False
    assert settings.otel_content is False  # message contents are opt-in
    assert settings.metrics_address is None
    assert settings.log_format == "text"


def test_good_values_are_taken(tmp_path: Path) -> None:
    settings = check_settings(
        _env(
            tmp_path,
            STEWARD_OTEL_EXPORT="yes",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true",
            STEWARD_METRICS_PORT="0.0.0.0:9464",
            STEWARD_LOG_FORMAT="JSON",
        )
    )
    assert settings.otel_export is True
    assert settings.otel_content is True
    assert settings.metrics_address == ("0.0.0.0", 9464)
    assert settings.log_format == "json"
    assert config.metrics_address({"STEWARD_METRICS_PORT": "9464"}) == ("127.0.0.1", 9464)


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("STEWARD_OTEL_EXPORT", "sometimes", "must be 1 or 0"),
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "maybe", "must be 1 or 0"),
        ("STEWARD_METRICS_PORT", "ninety", "must be a port"),
        ("STEWARD_METRICS_PORT", "70000", "must be a port"),
        ("STEWARD_METRICS_PORT", "0", "must be a port"),
        ("STEWARD_LOG_FORMAT", "xml", "must be text or json"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_its_variable(
    tmp_path: Path, variable: str, value: str, fragment: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_settings(_env(tmp_path, **{variable: value}))
    message = str(raised.value)
    assert variable in message and fragment in message
    assert "\n" not in message and message.endswith(".")


def test_an_unknown_otlp_protocol_is_refused_only_when_exporting(tmp_path: Path) -> None:
    quiet = check_settings(_env(tmp_path, OTEL_EXPORTER_OTLP_PROTOCOL="carrier-pigeon"))
    assert quiet.otel_export is False
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_PROTOCOL must be"):
        check_settings(
            _env(tmp_path, STEWARD_OTEL_EXPORT="1", OTEL_EXPORTER_OTLP_PROTOCOL="carrier-pigeon")
        )


def test_the_service_is_named_steward_unless_the_standard_variables_name_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert config.resource().attributes["service.name"] == "steward"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "steward-eu")
    assert config.resource().attributes["service.name"] == "steward-eu"


def test_a_worker_whose_metrics_port_is_taken_stops_with_one_line(migrated: Engine) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = steward(migrated, "worker", "--drain", env={"STEWARD_METRICS_PORT": str(port)})
    # The worker logs at INFO from its start (the database check's lines come first).
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"steward: STEWARD_METRICS_PORT: /metrics cannot be served on 127.0.0.1:{port} "
        "(Address already in use); choose a free port."
    )


def test_a_bad_log_format_stops_every_command_with_one_line(migrated: Engine) -> None:
    refused(steward(migrated, "runs", "list", env={"STEWARD_LOG_FORMAT": "xml"}), "text or json")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("SPAN_ONLY", True), ("span_and_event", True), ("EVENT_ONLY", False), ("NO_CONTENT", False)],
)
def test_the_content_modes_of_newer_instrumentations_are_understood(
    value: str, expected: bool
) -> None:
    assert (
        config.content_enabled({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": value})
        is expected
    )
