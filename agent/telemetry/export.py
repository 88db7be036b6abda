"""The trace export job: committed trace rows out to an OTLP collector, behind the runs.

A worker runs ``TraceExport.run_once`` every few seconds. One process at a time takes the
export's turn (a lease on the cursor row); it plans the next segments, builds their spans,
sends them, and marks them sent. A collector that cannot be reached costs the runs nothing:
the send fails, the failure and the time of the next try (exponential backoff with jitter,
from tenacity) are saved on the cursor, and the planned segments are sent again, the same
spans with the same ids, once the collector answers. Delivery is at least once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from sqlalchemy.engine import Engine
from tenacity import RetryCallState, wait_exponential_jitter

from agent.telemetry import config, cursor
from agent.telemetry.ids import SpanIds
from agent.telemetry.logs import configure_logging
from agent.telemetry.rows import load
from agent.telemetry.spans import SpanBuilder
from storage.engine import create_engine, sqlite_synchronous

log = logging.getLogger(__name__)
_EXPORTS: dict[str, TraceExport] = {}


@dataclass(frozen=True)
class ExportTick:
    """What one turn of the job did."""

    sent_segments: int = 0
    sent_spans: int = 0
    failed: bool = False
    skipped: bool = False


class TraceExport:
    """Sends committed trace segments through ``exporter`` (an OpenTelemetry span exporter).

    Args:
        engine: Steward's database.
        exporter: where spans go; ``agent.telemetry.config.span_exporter`` builds the OTLP one.
        owner: who takes the export's turn (the worker's id).
        resource: the service the spans come from.
        content: whether message contents leave (opt-in; see ``agent.telemetry.spans``).
        batch_runs: runs per request to the collector.
        max_backoff_s: the longest wait between two tries while the collector is down.
    """

    def __init__(
        self,
        engine: Engine,
        exporter: SpanExporter,
        *,
        owner: str,
        resource: Resource,
        content: bool = False,
        batch_runs: int = 100,
        max_backoff_s: float = 60.0,
        lease_s: float = 120.0,
    ) -> None:
        self.engine = engine
        self.exporter = exporter
        self.owner = owner
        self.resource = resource
        self.content = content
        self.batch_runs = batch_runs
        self.lease_s = lease_s
        self._wait = wait_exponential_jitter(initial=1, max=max_backoff_s)
        self._builder: SpanBuilder | None = None
        self.spans_sent = 0
        self.failures = 0

    @classmethod
    def from_environment(cls, engine: Engine, *, owner: str) -> TraceExport:
        """The export the ``STEWARD_OTEL_EXPORT`` and ``OTEL_*`` variables describe."""
        return cls(
            engine,
            config.span_exporter(),
            owner=owner,
            resource=config.resource(),
            content=config.content_enabled(),
        )

    @property
    def builder(self) -> SpanBuilder:
        if self._builder is None:
            ids = SpanIds(cursor.installation_key(self.engine))
            self._builder = SpanBuilder(ids, self.resource, content=self.content)
        return self._builder

    def run_once(self, *, max_batches: int = 50) -> ExportTick:
        """Send what has stopped since the last turn (up to ``max_batches`` requests)."""
        builder = self.builder
        if not cursor.has_work(self.engine) or not cursor.take_turn(
            self.engine, self.owner, lease_s=self.lease_s
        ):
            return ExportTick(skipped=True)
        segments_sent = spans_sent = 0
        try:
            for _ in range(max_batches):
                segments = cursor.plan(self.engine, limit=self.batch_runs)
                if not segments:
                    break
                spans = builder.build(load(self.engine, segments, content=self.content))
                if not self._send(spans):
                    return ExportTick(segments_sent, spans_sent, failed=True)
                cursor.mark_sent(self.engine, segments)
                segments_sent += len(segments)
                spans_sent += len(spans)
                self.spans_sent += len(spans)
        finally:
            cursor.end_turn(self.engine, self.owner, moved=segments_sent > 0)
        return ExportTick(segments_sent, spans_sent)

    def _send(self, spans: Sequence[ReadableSpan]) -> bool:
        try:
            result = self.exporter.export(spans)
        except Exception as exc:  # noqa: BLE001 - any exporter failure is a failed send
            error = f"{type(exc).__name__}: {exc}"
        else:
            if result is SpanExportResult.SUCCESS:
                return True
            error = "the collector refused the spans or could not be reached"
        self.failures += 1
        failures, delay = cursor.record_failure(self.engine, error, self._delay)
        log.warning(
            "trace export failed (%d in a row): %s; the next try is in %.1f s and the runs go on",
            failures,
            error,
            delay,
        )
        return False

    def _delay(self, failures: int) -> float:
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = failures
        return float(self._wait(state))

    def shutdown(self) -> None:
        self.exporter.shutdown()


def export_turn(url: str, owner: str) -> ExportTick:
    """One turn of the export for the database at ``url``, built once per process from the
    environment (``agent.telemetry.child`` runs it in a worker's export process)."""
    export = _EXPORTS.get(url)
    if export is None:
        configure_logging(logging.WARNING)
        engine = create_engine(url, synchronous=sqlite_synchronous())
        export = _EXPORTS[url] = TraceExport.from_environment(engine, owner=owner)
    return export.run_once()
