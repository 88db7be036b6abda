"""The telemetry settings: Steward's switches and the standard OpenTelemetry variables.

``STEWARD_OTEL_EXPORT`` turns the trace export on; where it goes and how is told by the
standard ``OTEL_EXPORTER_OTLP_*`` variables, read by the OTLP exporter itself, and the service
by ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``. Message contents leave only with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``, the variable OpenTelemetry's own
GenAI instrumentations read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter

from agent.errors import ConfigurationError

EXPORT_VARIABLE = "STEWARD_OTEL_EXPORT"
CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
METRICS_VARIABLE = "STEWARD_METRICS_PORT"
LOG_FORMAT_VARIABLE = "STEWARD_LOG_FORMAT"
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_YES = ("1", "true", "yes", "on")
_NO = ("", "0", "false", "no", "off")
LOG_FORMATS = ("text", "json")


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _switch(env: Mapping[str, str], variable: str) -> bool:
    raw = env.get(variable, "").strip().lower()
    if raw in _YES:
        return True
    if raw in _NO:
        return False
    raise ConfigurationError(
        f"{variable} must be 1 or 0 (or true/false, yes/no, on/off), not {env[variable]!r}."
    )


def export_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process's worker sends traces (``STEWARD_OTEL_EXPORT``, off by default).

    Raises:
        ConfigurationError: the switch or the OTLP protocol is not one Steward knows.
    """
    env = _env(environ)
    enabled = _switch(env, EXPORT_VARIABLE)
    if enabled:
        otlp_protocol(env)
    return enabled


# The values OpenTelemetry's newer GenAI instrumentations give the same variable: contents on
# spans or not (Steward sends no log events).
_CONTENT_MODES = {
    "span_only": True,
    "span_and_event": True,
    "event_only": False,
    "no_content": False,
}


def content_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether message contents leave in span attributes (opt-in): ``true`` (or
    ``SPAN_ONLY`` / ``SPAN_AND_EVENT``, as newer instrumentations spell it)."""
    env = _env(environ)
    mode = _CONTENT_MODES.get(env.get(CONTENT_VARIABLE, "").strip().lower())
    return mode if mode is not None else _switch(env, CONTENT_VARIABLE)


def otlp_protocol(environ: Mapping[str, str] | None = None) -> str:
    """``http/protobuf`` (the default) or ``grpc`` (needs its exporter package)."""
    env = _env(environ)
    for variable in _PROTOCOL_VARIABLES:
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        if raw == "http/protobuf":
            return raw
        if raw == "grpc":
            try:
                import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # noqa: F401
            except ImportError as exc:
                raise ConfigurationError(
                    f"{variable}=grpc needs the opentelemetry-exporter-otlp-proto-grpc package; "
                    "install it or use http/protobuf."
                ) from exc
            return raw
        raise ConfigurationError(
            f"{variable} must be http/protobuf or grpc for Steward's trace export, not {raw!r}."
        )
    return "http/protobuf"


def span_exporter(environ: Mapping[str, str] | None = None) -> SpanExporter:
    """The OTLP span exporter the ``OTEL_EXPORTER_OTLP_*`` variables describe."""
    if otlp_protocol(environ) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        exporter: SpanExporter = GrpcSpanExporter()
        return exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def resource() -> Resource:
    """The service the spans come from: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``,
    named ``steward`` unless they name it."""
    found = Resource.create()
    if str(found.attributes.get("service.name", "")).startswith("unknown_service"):
        found = found.merge(Resource({"service.name": "steward"}))
    return found


def metrics_address(environ: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """Where ``/metrics`` is served: ``STEWARD_METRICS_PORT`` as ``PORT`` (on 127.0.0.1) or
    ``HOST:PORT``; None when unset.

    Raises:
        ConfigurationError: not a port from 1 to 65535 (with an optional host).
    """
    raw = _env(environ).get(METRICS_VARIABLE, "").strip()
    if not raw:
        return None
    host, _, port = raw.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(
            f"{METRICS_VARIABLE} must be a port (1-65535) or HOST:PORT, such as 9464 or "
            f"0.0.0.0:9464, not {raw!r}."
        )
    return (host.strip("[]") or "127.0.0.1", int(port))


def log_format(environ: Mapping[str, str] | None = None) -> str:
    """``text`` (the default) or ``json``: one JSON object per log line."""
    raw = _env(environ).get(LOG_FORMAT_VARIABLE, "").strip().lower() or "text"
    if raw not in LOG_FORMATS:
        raise ConfigurationError(f"{LOG_FORMAT_VARIABLE} must be text or json, not {raw!r}.")
    return raw
