"""KPIs for managers (and engineers weighing a version): role check, then the storage query."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from agent.actors import KPI_ROLES, Actor, require
from agent.errors import InvalidInput
from agent.platform import Platform
from storage.engine import read_session
from storage.queries.kpis import KpiFilter, KpiReport, compare_versions, compute_kpis
from storage.queries.stats import GRAINS, Grain
from storage.queries.usage import any_model_usage, usage_by_version

__all__ = [
    "GRAINS",
    "Grain",
    "KpiFilter",
    "KpiReport",
    "kpi_comparison",
    "kpi_report",
    "model_usage_by_version",
]


def kpi_report(
    platform: Platform,
    actor: Actor,
    flt: KpiFilter,
    *,
    grain: Grain = "day",
    now: datetime | None = None,
) -> KpiReport:
    """The KPIs of DESIGN.md for a time range, agent and version, with a trend by ``grain``.

    Raises:
        Forbidden: the actor is neither manager nor engineer.
        InvalidInput: the range ends before it starts, or the grain is unknown.
    """
    require(actor, KPI_ROLES, "read KPIs")
    _check(flt, grain)
    with read_session(platform.engine) as session:
        return compute_kpis(flt, session=session, grain=grain, now=now)


def kpi_comparison(
    platform: Platform,
    actor: Actor,
    agent: str,
    a: int,
    b: int,
    *,
    flt: KpiFilter | None = None,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Versions ``a`` and ``b`` of ``agent`` side by side over ``flt``'s time range (default:
    all time).

    Raises:
        Forbidden: the actor is neither manager nor engineer.
        InvalidInput: the two versions are the same, or the range ends before it starts.
    """
    require(actor, KPI_ROLES, f"compare the KPIs of {agent!r} versions")
    flt = flt or KpiFilter()
    _check(flt, "day")
    if a == b:
        raise InvalidInput(f"pick two different versions of {agent} to compare.")
    with read_session(platform.engine) as session:
        return compare_versions(flt, agent, a, b, session=session, now=now)


def _check(flt: KpiFilter, grain: str) -> None:
    if flt.since is not None and flt.until is not None and flt.until <= flt.since:
        raise InvalidInput("the time range ends before it starts; pick an end after the start.")
    if grain not in GRAINS:
        raise InvalidInput(f"the trend is by {' or '.join(GRAINS)}, not {grain!r}.")


def model_usage_by_version(platform: Platform, actor: Actor, flt: KpiFilter) -> pd.DataFrame | None:
    """Tokens, cost, model calls, planner errors and model latency per agent and version, or
    None when no run in the range asked a language model.

    Raises:
        Forbidden: the actor is neither manager nor engineer.
    """
    require(actor, KPI_ROLES, "read KPIs")
    with read_session(platform.engine) as session:
        if not any_model_usage(flt, session=session):
            return None
        return usage_by_version(flt, session=session)
