"""Shadow rules: evaluated on live traffic and recorded next to the live decision, never
enforced; their would-be decisions are read back as flips."""

from __future__ import annotations

import copy
import json

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import Actor
from agent.release.shadow import shadow_report
from agent.users import add_first_user
from storage.engine import read_session
from storage.enums import RunStatus, StepKind
from storage.models import Run, Step
from tests.support.cli import ok, refused, steward
from tests.support.runtime import (
    SHOP_POLICY,
    Effects,
    drive,
    install_agent,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)

MONA = Actor.of("mona", ["manager"])
SCRIPT = [
    {
        "reasoning": "two refunds",
        "calls": [
            {"tool": "pay", "args": {"order_id": "O1", "amount": 40.0}},
            {"tool": "pay", "args": {"order_id": "O2", "amount": 80.0}},
        ],
    },
    {"reasoning": "done", "final": {"resolution": "refunded"}},
]


def _shadowed_version() -> dict[str, object]:
    policy = copy.deepcopy(SHOP_POLICY)
    policy["rules"].append(
        {
            "id": "pay-cap-50",
            "tool": "pay",
            "when": "args.amount > 50.0",
            "effect": "deny",
            "reason": "a stricter cap we are trying out",
            "shadow": True,
        }
    )
    return scripted_version(SCRIPT, policy=policy)


def test_a_shadow_rule_is_recorded_and_never_enforced(migrated: Engine) -> None:
    effects = Effects()
    install_agent(migrated, "shop", _shadowed_version())
    submit(migrated, "shop", {"order_id": "O1"})
    assert drive(migrated, shop_registry(effects)) == [RunStatus.SUCCEEDED]
    # Both refunds were paid: the shadow deny changed nothing.
    assert sorted(effects.payments.values()) == [40.0, 80.0]
    with read_session(migrated) as session:
        steps = session.exec(
            select(Step).where(col(Step.kind) == StepKind.APPLY_GUARDRAIL).order_by(col(Step.seq))
        ).all()
        run_id = session.exec(select(Run.id)).one()
    records = {s.input["args"]["order_id"]: s.output["policy"] for s in steps if s.input}
    assert records["O1"]["effect"] == "allow" and records["O1"]["shadow"]["effect"] == "allow"
    assert records["O2"]["effect"] == "allow"
    assert records["O2"]["shadow"] == {
        "effect": "deny",
        "rule_id": "pay-cap-50",
        "matched": [{"rule_id": "pay-cap-50", "effect": "deny"}],
    }

    report = shadow_report(platform_for(migrated), MONA, "shop")
    assert (report.decisions, report.unchanged, report.flipped) == (2, 1, 1)
    (flip,) = report.flips
    assert (flip.from_effect, flip.to_effect, flip.rule_id, flip.tool, flip.runs) == (
        "allow",
        "deny",
        "pay-cap-50",
        "pay",
        (run_id,),
    )
    assert report.rule_matches == {"pay-cap-50": 1}

    add_first_user(platform_for(migrated), "mona", ["manager", "admin"], password="mona-pass-1")

    shown = json.loads(
        ok(
            steward(
                migrated, "policy", "shadow", "shop", "--version", "1", "--json", "--as", "mona"
            )
        )
    )
    assert (shown["decisions"], shown["flipped"]) == (2, 1)
    said = ok(steward(migrated, "policy", "shadow", "shop", "--as", "mona"))
    assert "allow -> deny  pay-cap-50  pay  v1: 1" in said
    refused(
        steward(migrated, "policy", "shadow", "shop", "--version", "9", "--as", "mona"),
        "no version 9",
    )


def test_a_version_without_shadow_rules_records_no_would_be_decision(engine: Engine) -> None:
    install_agent(engine, "shop", scripted_version(SCRIPT))
    submit(engine, "shop", {"order_id": "O1"})
    drive(engine, shop_registry(Effects()))
    with read_session(engine) as session:
        outputs = [
            s.output or {}
            for s in session.exec(
                select(Step).where(col(Step.kind) == StepKind.APPLY_GUARDRAIL)
            ).all()
        ]
    assert outputs and all("shadow" not in o["policy"] for o in outputs)
    assert shadow_report(platform_for(engine), MONA, "shop").decisions == 0
