"""``steward kpis --autonomy``: where autonomy can grow and where reviews matter, per rule and
per reviewer, the rubber stamps and what reviews held back."""

from __future__ import annotations

import argparse

from agent.actors import Actor
from agent.platform import Platform
from agent.reads.kpis import KpiFilter, autonomy_report
from console.cli.common import print_json


def print_autonomy(
    args: argparse.Namespace, platform: Platform, actor: Actor, flt: KpiFilter
) -> None:
    """Print the autonomy report for ``flt`` (JSON with ``--json``)."""
    report = autonomy_report(platform, actor, flt)
    if args.json:
        print_json(report.as_dict())
        return
    if report.rules.empty:
        print("no review was raised in this range.")
        return
    print("rules (how their reviews ended):")
    for rule in report.rules.to_dict(orient="records"):
        candidate = (
            "  <- auto-allow candidate (steward policy suggest)"
            if rule["auto_allow_candidate"]
            else ""
        )
        print(
            f"  {rule['agent']} v{rule['version']} {rule['rule_id']}: {rule['reviews']} reviews, "
            f"{rule['decided']} decided; approved {_percent(rule['approve_rate'])}, edited "
            f"{_percent(rule['edit_rate'])}, rejected {_percent(rule['reject_rate'])}, "
            f"overridden {_percent(rule['override_rate'])}, expired "
            f"{_percent(rule['expire_rate'])}; median decision "
            f"{_seconds(rule['median_decision_s'])}{candidate}"
        )
    print("reviewers:")
    for person in report.reviewers.to_dict(orient="records"):
        print(
            f"  {person['reviewer']}: {person['decisions']} decisions ({person['approved']} "
            f"approved, {person['edited']} edited, {person['rejected']} rejected, "
            f"{person['overridden']} overridden); median {_seconds(person['median_decision_s'])}, "
            f"p95 {_seconds(person['p95_decision_s'])}; rubber stamps {person['rubber_stamps']}"
        )
    thresholds = report.thresholds
    print(
        f"rubber stamps: {len(report.rubber_stamps)} (risk >= {thresholds['high_risk']} approved "
        f"within {thresholds['rubber_stamp_s']:g} s of being raised)"
    )
    print(
        f"held back: ${report.money_held_usd:,.2f} and {report.calls_held} side-effecting calls "
        "that never ran (rejected or expired; edits that lowered an amount count the difference)"
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} s"
