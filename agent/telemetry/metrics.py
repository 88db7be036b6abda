"""Prometheus metrics read from the database at each scrape, served on ``/metrics``.

Steward's state lives in its database, shared by every worker and console process, so the
metrics are read from it when Prometheus scrapes (a custom prometheus-client collector) rather
than counted in one process's memory: any process serving ``/metrics`` reports the same
figures. Labels are bounded by what an installation configures (agents, versions, tools,
statuses, error classes); no run, task or review id is ever a label. Evaluation runs count in
none of them, as in every production read.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from agent.telemetry import cursor
from storage.engine import read_session
from storage.enums import CircuitState, ReviewStatus, ToolCallStatus
from storage.models import CircuitBreaker
from storage.queries.kpi_sections import DECIDED_BY_PEOPLE
from storage.queries.stats import seconds_between
from storage.tables import AGENT_VERSIONS, AGENTS, REVIEWS, RUNS, TOOL_CALLS, table
from storage.types import utcnow

log = logging.getLogger(__name__)
CIRCUITS = table(CircuitBreaker)
# Time to decision, in seconds: from a minute to a day (review SLAs are minutes to hours).
DECISION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 8 * 3600.0, 86400.0)
_PRODUCTION = RUNS.c.eval_run_id.is_(None)


class StewardCollector(Collector):
    """Reads Steward's metrics from ``engine`` at each scrape.

    Args:
        engine: Steward's database.
        export_backlog: report the trace export's backlog (when this installation exports).
    """

    def __init__(self, engine: Engine, *, export_backlog: bool = False) -> None:
        self.engine = engine
        self.export_backlog = export_backlog

    def collect(self) -> Iterator[Metric]:
        with read_session(self.engine) as session:
            connection = session.connection()
            yield from self._runs(connection)
            yield from self._reviews(connection)
            yield from self._tools(connection)
            yield from self._circuits(connection)
        if self.export_backlog:
            yield from self._backlog()

    def _runs(self, connection: sa.Connection) -> Iterator[Metric]:
        runs = GaugeMetricFamily(
            "steward_runs",
            "Production runs by agent, version and status.",
            labels=["agent", "version", "status"],
        )
        tokens = CounterMetricFamily(
            "steward_model_tokens",
            "Model tokens used by production runs.",
            labels=["agent", "version", "type"],
        )
        cost = CounterMetricFamily(
            "steward_model_cost_usd",
            "Model cost of production runs, in US dollars.",
            labels=["agent", "version"],
        )
        totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
        for row in connection.execute(
            sa.select(
                AGENTS.c.name,
                AGENT_VERSIONS.c.number,
                RUNS.c.status,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(RUNS.c.tokens_in), 0),
                sa.func.coalesce(sa.func.sum(RUNS.c.tokens_out), 0),
                sa.func.coalesce(sa.func.sum(RUNS.c.cost_usd), 0.0),
            )
            .join(AGENTS, AGENTS.c.id == RUNS.c.agent_id)
            .join(AGENT_VERSIONS, AGENT_VERSIONS.c.id == RUNS.c.version_id)
            .where(_PRODUCTION)
            .group_by(AGENTS.c.name, AGENT_VERSIONS.c.number, RUNS.c.status)
        ):
            agent, version = row[0], str(row[1])
            runs.add_metric([agent, version, row[2].value], row[3])
            total = totals[(agent, version)]
            total[0] += row[4]
            total[1] += row[5]
            total[2] += row[6]
        for (agent, version), (tokens_in, tokens_out, usd) in sorted(totals.items()):
            tokens.add_metric([agent, version, "input"], tokens_in)
            tokens.add_metric([agent, version, "output"], tokens_out)
            cost.add_metric([agent, version], usd)
        yield from (runs, tokens, cost)

    def _reviews(self, connection: sa.Connection) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "steward_review_queue_depth",
            "Reviews waiting for a person, by agent and status.",
            labels=["agent", "status"],
        )
        oldest = GaugeMetricFamily(
            "steward_review_oldest_waiting_seconds",
            "Age of the oldest review waiting for a person, by agent.",
            labels=["agent"],
        )
        now = utcnow()
        production = REVIEWS.c.run_id.in_(sa.select(RUNS.c.id).where(_PRODUCTION))
        oldest_by_agent: dict[str, datetime] = {}
        for row in connection.execute(
            sa.select(
                AGENTS.c.name, REVIEWS.c.status, sa.func.count(), sa.func.min(REVIEWS.c.created_at)
            )
            .join(AGENTS, AGENTS.c.id == REVIEWS.c.agent_id)
            .where(REVIEWS.c.status.in_(ReviewStatus.open_statuses()))
            .where(production)
            .group_by(AGENTS.c.name, REVIEWS.c.status)
        ):
            depth.add_metric([row[0], row[1].value], row[2])
            first = _aware(row[3])
            if first is not None and (
                row[0] not in oldest_by_agent or first < oldest_by_agent[row[0]]
            ):
                oldest_by_agent[row[0]] = first
        for agent, first in sorted(oldest_by_agent.items()):
            oldest.add_metric([agent], max((now - first).total_seconds(), 0.0))
        yield from (depth, oldest)
        waited = seconds_between(
            REVIEWS.c.decided_at, REVIEWS.c.created_at, connection.dialect.name
        )
        columns = [
            sa.func.coalesce(sa.func.sum(sa.case((waited <= bound, 1), else_=0)), 0)
            for bound in DECISION_BUCKETS
        ]
        decided = connection.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(waited), 0.0), *columns)
            .where(REVIEWS.c.decided_at.is_not(None))
            .where(REVIEWS.c.status.in_(DECIDED_BY_PEOPLE))  # as the KPIs count it
            .where(production)
        ).one()
        count, total = int(decided[0]), float(decided[1])
        buckets = [
            (_bound(b), float(n)) for b, n in zip(DECISION_BUCKETS, decided[2:], strict=True)
        ]
        buckets.append(("+Inf", float(count)))
        yield HistogramMetricFamily(
            "steward_review_decision_seconds",
            "Time from a review's creation to a person's decision (expiries aside).",
            buckets=buckets,
            sum_value=total,
        )

    def _tools(self, connection: sa.Connection) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "steward_tool_calls",
            "Tool calls in the action ledger that ended, by tool and status.",
            labels=["tool", "status"],
        )
        errors = CounterMetricFamily(
            "steward_tool_errors",
            "Tool calls that ended in an error, by tool and error class.",
            labels=["tool", "error_class"],
        )
        production = TOOL_CALLS.c.run_id.in_(sa.select(RUNS.c.id).where(_PRODUCTION))
        for row in connection.execute(
            sa.select(
                TOOL_CALLS.c.tool, TOOL_CALLS.c.status, TOOL_CALLS.c.error_class, sa.func.count()
            )
            .where(TOOL_CALLS.c.status != ToolCallStatus.IN_FLIGHT)
            .where(production)
            .group_by(TOOL_CALLS.c.tool, TOOL_CALLS.c.status, TOOL_CALLS.c.error_class)
        ):
            calls.add_metric([row[0], row[1].value], row[3])
            if row[2] is not None:
                errors.add_metric([row[0], row[2].value], row[3])
        yield from (_merged(calls), _merged(errors))

    def _circuits(self, connection: sa.Connection) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "steward_circuit_state",
            "Each tool's circuit breaker: 1 for its current state.",
            labels=["tool", "state"],
        )
        openings = CounterMetricFamily(
            "steward_circuit_openings", "Times each tool's circuit breaker opened.", labels=["tool"]
        )
        for row in connection.execute(
            sa.select(CIRCUITS.c.tool, CIRCUITS.c.state, CIRCUITS.c.opened_count).order_by(
                CIRCUITS.c.tool
            )
        ):
            for candidate in CircuitState:
                state.add_metric([row[0], candidate.value], 1.0 if row[1] is candidate else 0.0)
            openings.add_metric([row[0]], row[2])
        yield from (state, openings)

    def _backlog(self) -> Iterator[Metric]:
        behind = cursor.backlog(self.engine)
        yield GaugeMetricFamily(
            "steward_trace_export_backlog_steps",
            "Committed trace steps of production runs not yet sent to the collector.",
            value=behind.steps,
        )
        yield GaugeMetricFamily(
            "steward_trace_export_backlog_runs",
            "Production runs with trace steps not yet sent to the collector.",
            value=behind.runs,
        )


def _merged(family: Metric) -> Metric:
    """``family`` with samples of equal labels added up (a status seen with several error
    classes)."""
    sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
    for sample in family.samples:
        sums[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    family.samples = []
    for (name, labels), value in sums.items():
        family.add_sample(name, dict(labels), value)
    return family


def _bound(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def _aware(moment: datetime | str | None) -> datetime | None:
    # Aggregates skip the column type on SQLite: min() comes back as the stored text.
    if moment is None or isinstance(moment, datetime):
        return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.fromisoformat(moment).replace(tzinfo=UTC)


def registry_for(engine: Engine, *, export_backlog: bool = False) -> CollectorRegistry:
    """A registry holding Steward's collector for ``engine``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StewardCollector(engine, export_backlog=export_backlog))
    return registry


def serve_metrics(
    engine: Engine, address: tuple[str, int], *, export_backlog: bool = False
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` for ``engine`` on ``address`` in a background thread; returns the
    server and its thread (``server.shutdown()`` stops it).

    Raises:
        OSError: the port cannot be bound (in use, or not allowed).
    """
    host, port = address
    server, thread = start_http_server(
        port, addr=host, registry=registry_for(engine, export_backlog=export_backlog)
    )
    log.info("metrics served on http://%s:%d/metrics", host, port)
    return server, thread
