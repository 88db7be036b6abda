"""The closed vocabularies of Steward's data: statuses, kinds, roles and error classes.

Every enum is stored by value as a short string (not a native PostgreSQL enum), so adding a
member is a code change and never an ``ALTER TYPE`` migration.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a person may do; a user can hold several."""

    OPERATOR = "operator"
    MANAGER = "manager"
    ENGINEER = "engineer"
    ADMIN = "admin"


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_REVIEW = "waiting_review"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"


class RunStatus(StrEnum):
    """Life of a run. ``ready`` means claimable: new, or resumable after a human decision."""

    READY = "ready"
    RUNNING = "running"
    WAITING_REVIEW = "waiting_review"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_RUN_STATUSES


TERMINAL_RUN_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ESCALATED, RunStatus.CANCELLED}
)


class StepKind(StrEnum):
    """Trace step kinds; the first three are OpenTelemetry GenAI operation names."""

    INVOKE_AGENT = "invoke_agent"
    CHAT = "chat"
    APPLY_GUARDRAIL = "apply_guardrail"
    EXECUTE_TOOL = "execute_tool"
    HUMAN_APPROVAL = "human_approval"
    REASONING = "reasoning"
    PROPOSAL = "proposal"
    OBSERVATION = "observation"
    FINAL_OUTPUT = "final_output"


class StepStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    ESCALATED = "escalated"
    DENIED = "denied"


class ErrorClass(StrEnum):
    """The one error taxonomy used across traces, ledger, reviews and KPIs."""

    INVALID_ARGUMENTS = "invalid_arguments"
    OUT_OF_SCOPE = "out_of_scope"
    POLICY_DENIED = "policy_denied"
    RATE_LIMITED = "rate_limited"
    CIRCUIT_OPEN = "circuit_open"
    TOOL_ERROR = "tool_error"
    TOOL_TIMEOUT = "tool_timeout"
    OUTCOME_UNKNOWN = "outcome_unknown"
    BUDGET_EXHAUSTED = "budget_exhausted"
    OUTPUT_INVALID = "output_invalid"
    PLANNER_ERROR = "planner_error"
    HUMAN_REJECTED = "human_rejected"
    REVIEW_EXPIRED = "review_expired"
    INTERNAL_ERROR = "internal_error"
    # MCP servers (agent.tools.mcp): could not be started or reached; lost during a call; a
    # pinned tool is missing or its schema changed since the version was created.
    MCP_UNAVAILABLE = "mcp_unavailable"
    MCP_SERVER_CRASHED = "mcp_server_crashed"
    MCP_TOOLS_CHANGED = "mcp_tools_changed"


class SideEffect(StrEnum):
    READ = "read"
    WRITE = "write"
    IRREVERSIBLE = "irreversible"


class ToolCallStatus(StrEnum):
    """Action-ledger states. ``in_flight`` is committed *before* the tool is invoked."""

    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OUTCOME_UNKNOWN = "outcome_unknown"
    CANCELLED = "cancelled"


class ReviewKind(StrEnum):
    ESCALATION = "escalation"
    BLOCK = "block"
    OUTCOME_UNKNOWN = "outcome_unknown"
    OUTPUT_INVALID = "output_invalid"


class ReviewStatus(StrEnum):
    PENDING = "pending"
    BLOCKED = "blocked"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"
    OVERRIDDEN = "overridden"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        """Still waiting for a person."""
        return self in (ReviewStatus.PENDING, ReviewStatus.BLOCKED)

    @property
    def authorizes(self) -> bool:
        """Decided in favour of the call it is bound to (approved, edited or overridden)."""
        return self in (ReviewStatus.APPROVED, ReviewStatus.EDITED, ReviewStatus.OVERRIDDEN)

    @classmethod
    def open_statuses(cls) -> tuple[ReviewStatus, ...]:
        """The statuses of reviews still waiting for a person, for queries."""
        return tuple(status for status in cls if status.is_open)

    @classmethod
    def authorizing_statuses(cls) -> tuple[ReviewStatus, ...]:
        """The statuses of reviews that authorize their call, for queries."""
        return tuple(status for status in cls if status.authorizes)


class DecisionKind(StrEnum):
    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"
    OVERRIDE = "override"
    EXPIRE = "expire"


class DeploymentAction(StrEnum):
    """How the active pointer moved. ``override_activate`` is an activation the evaluation gate
    refused and a role named in the agent's release settings pushed through, with a reason."""

    ACTIVATE = "activate"
    ROLLBACK = "rollback"
    OVERRIDE_ACTIVATE = "override_activate"


class CanaryStatus(StrEnum):
    """Life of a canary release: it runs until promoted, aborted by a person, or rolled back
    by its guard (a significant breach of the agent's release settings)."""

    RUNNING = "running"
    PROMOTED = "promoted"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class EvalRunStatus(StrEnum):
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
