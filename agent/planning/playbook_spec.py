"""What a playbook in a version's ``planner.playbooks`` says, parsed and checked.

A playbook handles one intent::

    - intent: refund
      match: {intent: refund}             # task fields that must equal (a list means "one of")
      injectable:                         # optional: args this naive agent takes from the message
        amount: 'refund\\s+\\$?(\\d[\\d,]*(?:\\.\\d+)?)'
      steps:
        - tool: lookup_order
          args: {order_id: $task.order_id}          # "$task.x" / "$obs.tool.field": the raw value
          reasoning: Check the order first.
        - tool: check_fraud_score
          args: {order_id: $task.order_id}
          stop_if: {field: risk, in: [high], resolution: escalated,
                    summary: "Order {task.order_id} looks fraudulent."}
        - tool: close_ticket
          when: $task.ticket_id                     # skipped when absent or empty
          on_failure: continue                      # default: stop and finish with a fallback
          args: {ticket_id: $task.ticket_id, resolution: "Refunded {obs.issue_refund.amount}"}
      final: {resolution: resolved, summary: "Refunded {obs.issue_refund.amount} USD."}

Inside strings, ``{task.x}`` and ``{obs.tool.field}`` are interpolated. ``injectable`` maps an
argument name to a pattern with one group; without it, ``DEFAULT_INJECTABLE`` applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import VersionSpecError

DEFAULT_INJECTABLE = {
    "amount": r"\brefund\s+(?:of\s+)?\$\s?(\d[\d,]*(?:\.\d+)?)",
    "to": r"\b(?:to|at)\s+([\w.+-]+@[\w-]+(?:\.[\w-]+)+)",
}


@dataclass(frozen=True)
class StopRule:
    """Finish early when a step's result field takes one of ``values``."""

    field: str
    values: tuple[Any, ...]
    resolution: str
    summary: str


@dataclass(frozen=True)
class PlaybookStep:
    tool: str
    args: Mapping[str, Any]
    when: str | None = None
    on_failure: str = "stop"
    stop_if: StopRule | None = None
    reasoning: str = ""


@dataclass(frozen=True)
class Playbook:
    """One intent's plan, parsed and checked from the version document."""

    intent: str
    match: Mapping[str, Any]
    steps: tuple[PlaybookStep, ...]
    final: Mapping[str, Any]
    injectable: Mapping[str, re.Pattern[str]]

    @classmethod
    def parse(cls, doc: Mapping[str, Any], index: int) -> Playbook:
        """Build from one ``planner.playbooks`` entry.

        Raises:
            VersionSpecError: naming the entry and what is wrong with it.
        """
        where = f"planner.playbooks[{index}]"
        intent = doc.get("intent")
        if not isinstance(intent, str) or not intent:
            raise VersionSpecError(f"{where} needs an 'intent' string")
        raw_steps = doc.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise VersionSpecError(f"{where} ({intent}) needs a non-empty 'steps' list")
        steps = tuple(_parse_step(s, f"{where}.steps[{i}]") for i, s in enumerate(raw_steps))
        match = doc.get("match", {"intent": intent})
        final = doc.get("final", {"resolution": "resolved", "summary": f"Completed {intent}."})
        if not isinstance(match, Mapping) or not isinstance(final, Mapping):
            raise VersionSpecError(f"{where} ({intent}): 'match' and 'final' must be mappings")
        injectable = {}
        for name, pattern in dict(doc.get("injectable", DEFAULT_INJECTABLE)).items():
            try:
                compiled = re.compile(str(pattern), re.IGNORECASE)
            except re.error as exc:
                raise VersionSpecError(f"{where}.injectable.{name}: bad pattern: {exc}") from None
            if compiled.groups != 1:
                raise VersionSpecError(f"{where}.injectable.{name}: needs exactly one group")
            injectable[name] = compiled
        return cls(intent, dict(match), steps, dict(final), injectable)

    def matches(self, task: Mapping[str, Any]) -> bool:
        for key, expected in self.match.items():
            value = task.get(key)
            if isinstance(expected, list) and value not in expected:
                return False
            if not isinstance(expected, list) and value != expected:
                return False
        return True


def _parse_step(doc: Any, where: str) -> PlaybookStep:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tool"), str):
        raise VersionSpecError(f"{where} needs a 'tool' name")
    on_failure = doc.get("on_failure", "stop")
    if on_failure not in ("stop", "continue"):
        raise VersionSpecError(f"{where}: on_failure must be 'stop' or 'continue'")
    args = doc.get("args", {})
    if not isinstance(args, Mapping):
        raise VersionSpecError(f"{where}: 'args' must be a mapping")
    stop_if = None
    if "stop_if" in doc:
        rule = doc["stop_if"]
        if not isinstance(rule, Mapping) or "field" not in rule or "in" not in rule:
            raise VersionSpecError(f"{where}: stop_if needs 'field' and 'in'")
        stop_if = StopRule(
            field=str(rule["field"]),
            values=tuple(rule["in"]),
            resolution=str(rule.get("resolution", "escalated")),
            summary=str(rule.get("summary", f"Stopped after {doc['tool']}.")),
        )
    return PlaybookStep(
        tool=doc["tool"],
        args=dict(args),
        when=doc.get("when"),
        on_failure=on_failure,
        stop_if=stop_if,
        reasoning=str(doc.get("reasoning", "")),
    )
