"""Every policy decision records what it decided on: the variables its rules read (secrets
redacted), the rules that matched and the policy's hash, so it can be read and replayed from
the trace alone."""

from __future__ import annotations

import copy

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.binding import policy_hash
from agent.spec import VersionSpec
from storage.engine import read_session
from storage.enums import StepKind
from storage.models import Step
from tests.support.runtime import (
    SHOP_POLICY,
    Effects,
    drive,
    install_agent,
    scripted_version,
    shop_registry,
    submit,
)

SCRIPT = [
    {
        "reasoning": "two refunds",
        "calls": [
            {"tool": "pay", "args": {"order_id": "O1", "amount": 80.0}},
            {"tool": "pay", "args": {"order_id": "O2", "amount": 900.0}},
        ],
    },
    {"reasoning": "done", "final": {"resolution": "refunded"}},
]


def _guardrails(engine: Engine) -> dict[str, dict[str, object]]:
    with read_session(engine) as session:
        steps = session.exec(
            select(Step).where(col(Step.kind) == StepKind.APPLY_GUARDRAIL).order_by(col(Step.seq))
        ).all()
    return {str((s.input or {})["args"]["order_id"]): dict(s.output or {}) for s in steps}


def test_a_decision_records_what_its_rules_read_and_which_matched(engine: Engine) -> None:
    document = scripted_version(SCRIPT)
    install_agent(engine, "shop", document)
    submit(engine, "shop", {"order_id": "O1", "api_key": "sk-live-123"})
    drive(engine, shop_registry(Effects()))
    decided = _guardrails(engine)
    expected_hash = policy_hash(VersionSpec.from_document(document).policy)

    small = decided["O1"]["policy"]
    assert isinstance(small, dict)
    assert small["policy_hash"] == expected_hash
    assert small["read"]["args"] == {"order_id": "O1", "amount": 80.0}
    assert small["matched"] == [{"rule_id": "pay-small", "effect": "allow"}]
    # The run-total rule reads the run's sums: what they were when this call was decided.
    assert "run" in small["read"]

    medium = decided["O2"]["policy"]
    assert isinstance(medium, dict)
    assert medium["matched"] == [{"rule_id": "pay-medium", "effect": "escalate"}]
    assert medium["read"]["args"]["amount"] == 900


def test_secrets_a_rule_reads_are_redacted_in_the_record(engine: Engine) -> None:
    policy = copy.deepcopy(SHOP_POLICY)
    policy["rules"].append(
        {
            "id": "keyed-task",
            "tool": "pay",
            "when": 'task.api_key == "sk-live-123" && args.amount > 5000.0',
            "effect": "deny",
            "reason": "never with the live key",
        }
    )
    install_agent(engine, "shop", scripted_version(SCRIPT, policy=policy))
    submit(engine, "shop", {"order_id": "O1", "api_key": "sk-live-123"})
    drive(engine, shop_registry(Effects()))
    with read_session(engine) as session:
        stored = " ".join(
            str(s.output) for s in session.exec(select(Step)).all() if s.output is not None
        )
    record = _guardrails(engine)["O1"]["policy"]
    assert isinstance(record, dict)
    assert record["read"]["task"] == {"api_key": "[redacted]"}
    assert "sk-live-123" not in stored
