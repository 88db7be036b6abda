"""Portable SQL statistics for read queries: nearest-rank percentiles, time buckets, durations.

SQLite has neither percentile functions nor ``date_trunc``, and PostgreSQL spells date
arithmetic its own way, so the few expressions where the two databases differ are written once,
here. Everything runs inside the database: callers never fetch the rows they summarize.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

Grain = Literal["hour", "day"]
# A select of a ``value`` column, and optionally a ``grp`` column, of any types.
Values = sa.Select[*tuple[Any, ...]]
GRAINS: tuple[Grain, ...] = ("hour", "day")
_BUCKET_FORMAT = {"hour": "%Y-%m-%d %H", "day": "%Y-%m-%d"}


def dialect_of(session: Session) -> str:
    """The name of the database dialect the session talks to (``sqlite``, ``postgresql``)."""
    return session.get_bind().dialect.name


def percentiles(
    values: Values,
    quantiles: Sequence[float],
    *,
    session: Session,
    decimals: int = 1,
) -> dict[Any, dict[float, float | None]]:
    """Nearest-rank percentiles of ``values`` at ``decimals`` precision, per group.

    See ``histograms`` for the arguments; groups with no values are absent from the result.
    """
    return {
        key: read_percentiles(histogram, quantiles)
        for key, histogram in histograms(values, session=session, decimals=decimals).items()
    }


def histograms(
    values: Values, *, session: Session, decimals: int = 1
) -> dict[Any, list[tuple[float, int]]]:
    """How often each value occurs, rounded to ``decimals`` places, per group.

    This is how percentiles are computed: the database groups and counts (a ``GROUP BY`` both
    databases run well, where window functions over every row are slow on SQLite), and the
    nearest-rank percentile ``q`` of ``n`` values, the ``ceil(q * n)``-th smallest, is read off
    the cumulative counts. Rounding keeps the order, so that is the exact percentile rounded to
    ``decimals`` places, and always a value that occurred.

    Args:
        values: a select with a column labelled ``value`` and, to compute percentiles per
            group, one labelled ``grp``. NULL values are ignored.
        session: an open session.
        decimals: the precision of the values.

    Returns:
        ``{group: [(value, count), ...]}`` sorted by value; without a ``grp`` column the only
        group is ``None``. Groups with no values are absent.
    """
    source = values.subquery()
    group = source.c.get("grp")
    groups = [group] if group is not None else []
    # PostgreSQL rounds to a number of places only numerics, not floats.
    rounded = sa.func.round(sa.cast(source.c.value, sa.Numeric), decimals, type_=sa.Float())
    rows = session.execute(
        sa.select(*groups, rounded, sa.func.count())
        .where(source.c.value.is_not(None))
        .group_by(*groups, rounded)
    ).all()
    found: dict[Any, list[tuple[float, int]]] = {}
    for row in rows:
        key = row[0] if group is not None else None
        found.setdefault(key, []).append((float(row[-2]), int(row[-1])))
    return {key: sorted(histogram) for key, histogram in found.items()}


def read_percentiles(
    histogram: Sequence[tuple[float, int]], quantiles: Sequence[float]
) -> dict[float, float | None]:
    """Nearest-rank percentiles from a histogram of ``(value, count)`` sorted by value.

    Histograms of several groups can be concatenated and sorted to read the percentiles of
    their union.
    """
    total = sum(count for _value, count in histogram)
    out: dict[float, float | None] = {}
    for q in quantiles:
        # ceil(q * n) in integer arithmetic (q in thousandths), so no float rounding creeps in.
        wanted = max(1, (total * round(q * 1000) + 999) // 1000)
        seen = 0
        out[q] = None
        for value, count in histogram:
            seen += count
            if seen >= wanted:
                out[q] = value
                break
    return out


def time_bucket(column: Any, grain: Grain, dialect: str) -> ColumnElement[str]:
    """The UTC hour or day a timestamp falls in, as sortable text (see ``parse_bucket``)."""
    if dialect == "postgresql":
        pattern = "YYYY-MM-DD HH24" if grain == "hour" else "YYYY-MM-DD"
        return sa.func.to_char(sa.func.timezone("UTC", column), pattern, type_=sa.String())
    # SQLite keeps Steward's timestamps as naive UTC text, "YYYY-MM-DD HH:MM:SS.ffffff".
    return sa.func.substr(column, 1, 13 if grain == "hour" else 10, type_=sa.String())


def parse_bucket(label: str, grain: Grain) -> datetime:
    """The aware UTC start of a bucket produced by ``time_bucket``."""
    return datetime.strptime(label, _BUCKET_FORMAT[grain]).replace(tzinfo=UTC)


def seconds_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[float]:
    """``later - earlier`` in seconds, as a float expression."""
    if dialect == "postgresql":
        return sa.cast(sa.extract("epoch", later - earlier), sa.Float())
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * sa.literal(86400.0)


def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """``SUM(CASE WHEN condition THEN 1 ELSE 0 END)``: how many rows match, as an integer."""
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)
