"""Exceptions of the governed-agent package.

Two families, as the style guide asks::

    StewardError
    ├── RunSignal                  steers a run; caught by the runtime, never shown raw to people
    │   ├── ToolError              a tool failed (``retryable``: may a retry help? ``health``:
    │   │                          does it say the tool's service is down?)
    │   │   ├── ToolTimeout        a tool did not answer within its time bound
    │   │   └── FenceLost          a tool refused to write: its call's claim is not current
    │   └── LeaseLost              another worker owns the run now; stop touching it
    └── ServiceError               for callers (CLI, console): one clear sentence each
        ├── ConfigurationError     a ``STEWARD_*`` setting is malformed or names what cannot be used
        ├── InvalidInput           bad arguments, JSON, reasons; nothing was changed
        │   └── DocumentError      a YAML document is invalid (its line, and rule or case)
        │       ├── VersionSpecError   an agent version
        │       └── SuiteSpecError     an evaluation suite
        ├── NotFound               the named agent, version, run, review or user does not exist
        ├── Forbidden              the acting user's roles do not allow the action
        ├── AuthenticationFailed   wrong name or password, or the account is disabled or locked
        ├── DecisionConflict       someone else decided the review first (names who and what)
        └── GateRefused            the activation gate refuses the version (names the failing
                                   suites and cases)

Every ``ToolError`` carries an ``ErrorClass`` from the one taxonomy in ``storage.enums``, and a
``Health`` signal that tells the tool's circuit breaker whether to count it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from storage.enums import ErrorClass


class Health(StrEnum):
    """What one attempt of a tool call says about the health of the service behind the tool.

    A circuit breaker exists to stop calling a service that cannot answer; it must not take a
    tool away from everyone because one call's input is bad. So every attempt is classified
    once, where the failure is understood (the tool, or the executor for what a tool raised
    without classifying it), and the breaker counts only ``UNHEALTHY`` failures.
    """

    HEALTHY = "healthy"
    """The service answered: a result, or a refusal of this call's own input (an HTTP 4xx,
    "no order O-9999 exists", a result that breaks the tool's contract)."""
    UNHEALTHY = "unhealthy"
    """The service could not answer: a timeout, a connection failure, an HTTP 5xx, 408 or 429."""
    UNKNOWN = "unknown"
    """The tool failed in a way that says nothing either way (an exception it did not classify,
    most often a bug in the tool)."""


class StewardError(Exception):
    """Base class of every error this package raises on purpose."""


class RunSignal(StewardError):
    """Raised inside a run to steer it; the runtime turns it into a classified step."""


class ToolError(RunSignal):
    """A tool call failed.

    Args:
        message: what went wrong, safe to show (no secrets).
        retryable: whether the same call may succeed if tried again.
        error_class: the taxonomy class recorded on the step and the ledger.
        health: what the failure says about the tool's service. By default a retryable error
            is ``UNHEALTHY`` (a repeat may succeed: the trouble is passing, as an outage's
            is) and any other is ``HEALTHY`` (a repeat would fail the same way: the trouble is
            this call's input, as in ``ToolError("no order O-9999 exists")``). Say so when the
            two part ways, e.g. a retryable refusal of one input.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        error_class: ErrorClass = ErrorClass.TOOL_ERROR,
        health: Health | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.error_class = error_class
        if health is None:
            health = Health.UNHEALTHY if retryable else Health.HEALTHY
        self.health = health


class ToolTimeout(ToolError):
    """A tool did not answer within its time bound: retryable, and a sign of an unhealthy
    service."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            retryable=True,
            error_class=ErrorClass.TOOL_TIMEOUT,
            health=Health.UNHEALTHY,
        )


class FenceLost(ToolError):
    """A tool refused to write because its call's claim is no longer current (another worker
    holds the run, or the runtime stopped waiting for the call): nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class LeaseLost(RunSignal):
    """The worker's lease on a run expired and another worker may have claimed it."""


class ServiceError(StewardError):
    """An error for the caller of a service function; ``str(error)`` is one clear sentence."""


class ConfigurationError(ServiceError):
    """A ``STEWARD_*`` setting is malformed or names something that cannot be used; the message
    names the variable, what is wrong and what to set instead. Raised when a process starts,
    before it does any work."""


class InvalidInput(ServiceError):
    """Bad arguments, JSON, reasons or settings; nothing was changed."""


class DocumentError(InvalidInput):
    """A document written as YAML (a version, a suite) is invalid.

    Attributes:
        line: 1-based line in the YAML source, when known.
        rule_id: the policy rule (or suite case) at fault, when the problem is in one.
    """

    def __init__(self, message: str, *, line: int | None = None, rule_id: str | None = None):
        where = []
        if line is not None:
            where.append(f"line {line}")
        if rule_id is not None:
            where.append(f"{self.part} {rule_id!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)
        self.line = line
        self.rule_id = rule_id
        self.detail = message

    part = "rule"


class VersionSpecError(DocumentError):
    """A version document is invalid (line and rule id when known)."""


class SuiteSpecError(DocumentError):
    """An evaluation suite document is invalid (line and case name when known)."""

    part = "case"


class NotFound(ServiceError):
    """The named agent, version, run, review or user does not exist."""


class Forbidden(ServiceError):
    """The acting user's roles do not allow the action."""


class AuthenticationFailed(ServiceError):
    """Wrong name or password, or the account is disabled or locked."""


class DecisionConflict(ServiceError):
    """A review was already decided; the message names who decided and what."""

    def __init__(self, message: str, *, decided_by: str | None, status: str) -> None:
        super().__init__(message)
        self.decided_by = decided_by
        self.status = status


class GateRefused(ServiceError):
    """The activation gate refuses a version: a required suite has no finished evaluation of its
    exact content hash, or that evaluation failed a security case, regressed against the active
    version or fell below the suite's threshold. Nothing was changed.

    Attributes:
        failing_cases: the cases that refuse it, as ``suite/case``.
        evaluation_ids: the candidate's evaluations the verdict used.
        verdict: the gate's verdict as JSON-ready data (``GateVerdict.as_dict``).
    """

    def __init__(
        self,
        message: str,
        *,
        failing_cases: tuple[str, ...],
        evaluation_ids: tuple[int, ...],
        verdict: dict[str, Any],
    ) -> None:
        super().__init__(message)
        self.failing_cases = failing_cases
        self.evaluation_ids = evaluation_ids
        self.verdict = verdict
