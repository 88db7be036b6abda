"""Exceptions of the governed-agent package.

Two families, as the style guide asks::

    StewardError
    ├── RunSignal                  steers a run; caught by the runtime, never shown raw to people
    │   ├── ToolError              a tool failed (``retryable`` says whether a retry may help)
    │   │   └── ToolTimeout        a tool did not answer within its time bound
    │   └── LeaseLost              another worker owns the run now; stop touching it
    └── ServiceError               for callers (CLI, console): one clear sentence each
        ├── ConfigurationError     a ``STEWARD_*`` setting is malformed or names what cannot be used
        ├── InvalidInput           bad arguments, JSON, reasons; nothing was changed
        ├── VersionSpecError       a version document is invalid (line and rule id when known)
        ├── NotFound               the named agent, version, run, review or user does not exist
        ├── Forbidden              the acting user's roles do not allow the action
        ├── AuthenticationFailed   wrong name or password, or the account is disabled or locked
        └── DecisionConflict       someone else decided the review first (names who and what)

Every ``ToolError`` carries an ``ErrorClass`` from the one taxonomy in ``storage.enums``.
"""

from __future__ import annotations

from storage.enums import ErrorClass


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
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        error_class: ErrorClass = ErrorClass.TOOL_ERROR,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.error_class = error_class


class ToolTimeout(ToolError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, error_class=ErrorClass.TOOL_TIMEOUT)


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


class VersionSpecError(InvalidInput):
    """A version document is invalid.

    Attributes:
        line: 1-based line in the YAML source, when known.
        rule_id: the policy rule at fault, when the problem is in a rule.
    """

    def __init__(self, message: str, *, line: int | None = None, rule_id: str | None = None):
        where = []
        if line is not None:
            where.append(f"line {line}")
        if rule_id is not None:
            where.append(f"rule {rule_id!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)
        self.line = line
        self.rule_id = rule_id
        self.detail = message


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
