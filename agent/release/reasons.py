"""The reason every release action asks for: required, and of a bounded length."""

from __future__ import annotations

from agent.errors import InvalidInput

MAX_REASON = 2000


def required_reason(reason: str, action: str) -> str:
    """``reason`` stripped; refused when empty (``a reason is required to <action>``) or over
    ``MAX_REASON`` characters."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(f"a reason is required to {action}.")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is limited to {MAX_REASON} characters.")
    return reason
