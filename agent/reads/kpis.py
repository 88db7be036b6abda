"""KPIs for managers (and engineers weighing a version): role check, then the storage query."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from agent.actors import KPI_ROLES, Actor, require
from agent.errors import InvalidInput
from agent.platform import Platform
from storage.engine import read_session
from storage.queries.autonomy import (
    AUTO_ALLOW_MIN_DECISIONS,
    AUTO_ALLOW_MIN_SHARE,
    AutonomyReport,
    autonomy_kpis,
)
from storage.queries.kpi_sections import Scope
from storage.queries.kpis import KpiFilter, KpiReport, compare_versions, compute_kpis
from storage.queries.stats import GRAINS, Grain
from storage.queries.usage import any_model_usage, usage_by_version

__all__ = [
    "GRAINS",
    "AutonomyReport",
    "Grain",
    "KpiFilter",
    "KpiReport",
    "autonomy_report",
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


def autonomy_report(
    platform: Platform,
    actor: Actor,
    flt: KpiFilter,
    *,
    min_decisions: int = AUTO_ALLOW_MIN_DECISIONS,
    min_share: float = AUTO_ALLOW_MIN_SHARE,
) -> AutonomyReport:
    """Where autonomy can grow and where reviews matter (``storage.queries.autonomy``): per
    rule, per reviewer, the rubber stamps and what reviews held back, over the reviews raised in
    ``flt``. A rule is an auto-allow candidate with at least ``min_decisions`` decisions, at
    least ``min_share`` of them approvals (the thresholds of ``steward policy suggest``).

    Raises:
        Forbidden: the actor is neither manager nor engineer.
        InvalidInput: the range ends before it starts, or a threshold is out of range.
    """
    require(actor, KPI_ROLES, "read KPIs")
    _check(flt, "day")
    if min_decisions < 1:
        raise InvalidInput(f"a rule needs at least 1 decision to be judged, not {min_decisions}.")
    if not 0 < min_share <= 1:
        raise InvalidInput(f"the approval share is above 0 and at most 1, not {min_share}.")
    with read_session(platform.engine) as session:
        scope = Scope.of(
            session=session,
            since=flt.since,
            until=flt.until,
            agent=flt.agent,
            version=flt.version,
        )
        if scope is None:
            return AutonomyReport()
        return autonomy_kpis(
            scope, session=session, min_decisions=min_decisions, min_share=min_share
        )


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
