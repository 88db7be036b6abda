"""Tool health for the KPIs: calls, success before and after retries, latency, circuit openings.

Over all production traffic the figures are every call's (read from the ledger's covering
health index alone) less the evaluations' few calls; over a narrower scope, the calls of the
runs in scope.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from storage.enums import ToolCallStatus
from storage.models import CircuitBreaker, ToolCall
from storage.queries.kpi_sections import Scope, rate, round_or_none
from storage.queries.production import evaluation_run_ids
from storage.queries.stats import count_where, histograms, read_percentiles

TOOL_COLUMNS = [
    "tool",
    "calls",
    "success_rate",
    "first_attempt_success_rate",
    "retried",
    "p50_ms",
    "p95_ms",
    "circuit_openings",
]


def tool_kpis(scope: Scope, *, session: Session) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per tool: calls, success before and after retries, latency, circuit openings; and the
    p50/p95/p99 of every call. Circuit openings count since the breaker was created."""
    if scope.narrowed:
        rows, durations = _tool_figures(scope.run_ids(ToolCall.run_id), session=session)
    else:
        # Every production call: every call, read from the covering health index alone, less
        # the evaluations' few calls found by their runs. Testing each call's run instead would
        # read every ledger row.
        rows, durations = _tool_figures((), session=session)
        less_rows, less_durations = _tool_figures(
            (col(ToolCall.run_id).in_(evaluation_run_ids()),), session=session
        )
        rows, durations = _less(rows, less_rows), _less_histograms(durations, less_durations)
    if not rows:
        return pd.DataFrame(columns=TOOL_COLUMNS), {"p50": None, "p95": None, "p99": None}
    per_tool = {tool: read_percentiles(h, (0.5, 0.95)) for tool, h in durations.items()}
    overall = read_percentiles(
        sorted(entry for h in durations.values() for entry in h), (0.5, 0.95, 0.99)
    )
    breakers = dict(
        session.execute(sa.select(col(CircuitBreaker.tool), col(CircuitBreaker.opened_count))).all()
    )
    table = pd.DataFrame(
        [
            {
                "tool": tool,
                "calls": int(calls),
                "success_rate": rate(int(ok), int(calls)),
                "first_attempt_success_rate": rate(int(first_ok), int(calls)),
                "retried": int(retried),
                "p50_ms": round_or_none(per_tool.get(tool, {}).get(0.5)),
                "p95_ms": round_or_none(per_tool.get(tool, {}).get(0.95)),
                "circuit_openings": int(breakers.get(tool, 0)),
            }
            for tool, calls, ok, first_ok, retried in rows
        ],
        columns=TOOL_COLUMNS,
    )
    return table, {f"p{round(q * 100)}": round_or_none(overall.get(q)) for q in (0.5, 0.95, 0.99)}


ToolRow = tuple[str, int, int, int, int]


def _tool_figures(
    conditions: tuple[ColumnElement[bool], ...], *, session: Session
) -> tuple[list[ToolRow], dict[Any, list[tuple[float, int]]]]:
    """(tool, calls, succeeded, succeeded at the first attempt, retried) per tool, by name, and
    each tool's histogram of call durations, over the ledger rows ``conditions`` select."""
    succeeded = col(ToolCall.status) == ToolCallStatus.SUCCEEDED
    rows = session.execute(
        sa.select(
            col(ToolCall.tool),
            sa.func.count(),
            count_where(succeeded),
            count_where(sa.and_(succeeded, col(ToolCall.attempts) <= 1)),
            count_where(col(ToolCall.attempts) > 1),
        )
        .where(*conditions)
        .group_by(col(ToolCall.tool))
        .order_by(col(ToolCall.tool))
    ).all()
    if not rows:
        return [], {}
    durations = histograms(
        sa.select(col(ToolCall.tool).label("grp"), col(ToolCall.duration_ms).label("value")).where(
            *conditions
        ),
        session=session,
    )
    return [(str(t), int(n), int(ok), int(first), int(r)) for t, n, ok, first, r in rows], durations


def _less(rows: list[ToolRow], less: list[ToolRow]) -> list[ToolRow]:
    """``rows`` with the figures of ``less`` taken away, tool by tool (tools left with no call
    dropped)."""
    taken = {row[0]: row[1:] for row in less}
    out = []
    for tool, *figures in rows:
        minus = taken.get(tool, (0, 0, 0, 0))
        calls, ok, first, retried = (a - b for a, b in zip(figures, minus, strict=True))
        if calls > 0:
            out.append((tool, calls, ok, first, retried))
    return out


def _less_histograms(
    histograms_: dict[Any, list[tuple[float, int]]], less: dict[Any, list[tuple[float, int]]]
) -> dict[Any, list[tuple[float, int]]]:
    """Each group's histogram with the counts of ``less`` taken away (empty groups dropped)."""
    out: dict[Any, list[tuple[float, int]]] = {}
    for group, histogram in histograms_.items():
        minus = dict(less.get(group, ()))
        left = [(value, n - minus.get(value, 0)) for value, n in histogram]
        kept = [(value, n) for value, n in left if n > 0]
        if kept:
            out[group] = kept
    return out
