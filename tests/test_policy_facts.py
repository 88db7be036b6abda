"""The policy loads only the facts a tool's rules read: a lookup should cost no fact query."""

from __future__ import annotations

import pytest

from agent.calls import Effect, ProposedCall
from agent.mediation.guards import CallContext, PolicyGuard
from agent.mediation.policy import CompiledPolicy, referenced_facts
from agent.spec import PolicyRuleSpec, PolicySpec


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("args.amount <= 100.0", set()),
        ("facts.refunds_today >= 3", {"refunds_today"}),
        ('facts["customer_email"] != args.to && facts.tier == "gold"', {"customer_email", "tier"}),
        ("has(facts.refunds_today) && facts.refunds_today > 1", {"refunds_today"}),
        ("size(facts) > 0", None),  # the whole map: every fact may matter
        ("'facts' in task.tags", None),  # cannot tell a string from a reference: load them all
    ],
)
def test_referenced_facts(expression: str, names: set[str] | None) -> None:
    assert referenced_facts(expression) == names


def _policy() -> CompiledPolicy:
    return CompiledPolicy(
        PolicySpec(
            default=Effect.ESCALATE,
            facts=("refunds_today", "customer_email"),
            rules=(
                PolicyRuleSpec("lookups", Effect.ALLOW, "reads", tool="lookup_*"),
                PolicyRuleSpec(
                    "daily",
                    Effect.DENY,
                    "limit",
                    tool="issue_refund",
                    when="facts.refunds_today >= 3",
                ),
                PolicyRuleSpec("small", Effect.ALLOW, "ok", tool="issue_refund"),
                PolicyRuleSpec(
                    "own-address",
                    Effect.DENY,
                    "only the customer",
                    tool="send_email",
                    when="args.to != facts.customer_email",
                ),
            ),
        )
    )


def test_the_guard_asks_only_for_the_facts_the_tool_needs() -> None:
    guard = PolicyGuard(_policy())
    asked: list[frozenset[str] | None] = []

    def load(names: frozenset[str] | None) -> dict[str, object]:
        asked.append(names)
        return {"refunds_today": 3, "customer_email": "a@example.com"}

    lookup = guard.check(ProposedCall("c1", "lookup_order", {}), CallContext({"args": {}}, load))
    refund = guard.check(ProposedCall("c2", "issue_refund", {}), CallContext({"args": {}}, load))
    email = guard.check(
        ProposedCall("c3", "send_email", {}), CallContext({"args": {"to": "b@example.com"}}, load)
    )
    assert asked == [frozenset({"refunds_today"}), frozenset({"customer_email"})]
    assert lookup is not None and lookup.effect is Effect.ALLOW
    assert refund is not None and (refund.effect, refund.rule_id) == (Effect.DENY, "daily")
    assert email is not None and (email.effect, email.rule_id) == (Effect.DENY, "own-address")
