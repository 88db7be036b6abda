"""A one-call agent on the demo's tools whose versions differ only in what the policy decides
on that call: the smallest pair of versions a canary's guard can tell apart."""

from __future__ import annotations

from textwrap import dedent


def lookup_version(effect: str) -> str:
    """A version that looks up the task's customer, the lookup's policy effect ``effect``
    (``allow``: the run succeeds on its own; ``escalate``: every run waits for a person)."""
    return dedent(
        f"""
        description: Looks up the task's customer; the policy says {effect}.
        planner:
          kind: playbook
          seed: 1
          noise: 0.0
          prompt: Look up the customer.
          playbooks:
            - intent: lookup
              match: {{intent: lookup}}
              steps:
                - tool: lookup_customer
                  args: {{customer_id: $task.customer_id}}
                  reasoning: Look up customer {{task.customer_id}}.
              final:
                resolution: resolved
                summary: Looked up customer {{task.customer_id}}.
        tools: [lookup_customer]
        data_sources: [crm, tickets]
        policy:
          default: deny
          rules:
            - id: lookup
              tool: lookup_customer
              effect: {effect}
              reason: The policy says {effect} for a lookup.
        budgets:
          max_steps: 20
          run_deadline_s: 60
          call_timeout_s: 2
        output:
          schema:
            type: object
            required: [resolution, summary]
        """
    )
