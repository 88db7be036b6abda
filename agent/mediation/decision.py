"""The outcome of one mediation stage or of the whole gate, built by named constructors."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.calls import Effect
from storage.enums import ErrorClass


@dataclass(frozen=True)
class Decision:
    """allow | escalate | deny, with the rule that decided, its reason and what follows.

    ``error_class`` classifies a deny (``out_of_scope``, ``invalid_arguments``,
    ``policy_denied``, ``rate_limited``, ``circuit_open``). ``override_roles`` names who may
    override a policy deny (empty: absolute). ``sla_minutes``, ``on_expiry`` and ``approvals``
    (how many distinct people must approve) govern the review an escalation creates.
    """

    effect: Effect
    rule_id: str | None = None
    reason: str = ""
    error_class: ErrorClass | None = None
    override_roles: tuple[str, ...] = ()
    sla_minutes: float | None = None
    on_expiry: str = "reject"
    max_tier: int = 1
    approvals: int = 1
    stage: str = "policy"
    details: dict[str, object] = field(default_factory=dict)

    @classmethod
    def allow(
        cls, rule_id: str | None = None, reason: str = "", *, stage: str = "policy"
    ) -> Decision:
        return cls(Effect.ALLOW, rule_id, reason, stage=stage)

    @classmethod
    def escalate(
        cls,
        rule_id: str,
        reason: str,
        *,
        sla_minutes: float | None = None,
        on_expiry: str = "reject",
        max_tier: int = 1,
        approvals: int = 1,
    ) -> Decision:
        return cls(
            Effect.ESCALATE,
            rule_id,
            reason,
            sla_minutes=sla_minutes,
            on_expiry=on_expiry,
            max_tier=max_tier,
            approvals=approvals,
        )

    @classmethod
    def deny(
        cls,
        rule_id: str | None,
        reason: str,
        *,
        error_class: ErrorClass = ErrorClass.POLICY_DENIED,
        override_roles: tuple[str, ...] = (),
        stage: str = "policy",
    ) -> Decision:
        return cls(
            Effect.DENY,
            rule_id,
            reason,
            error_class=error_class,
            override_roles=override_roles,
            stage=stage,
        )

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW
