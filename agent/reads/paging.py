"""Pages of every list a person reads: one window (``offset``, ``limit``) and the whole count.

Each list read takes ``offset`` and ``limit`` keyword arguments, checked here the same way, and
returns a ``Page`` whose ``next_offset`` says where the rest starts, so no list is ever cut
without saying so (the CLI prints it, the console shows it).
"""

from __future__ import annotations

from agent.errors import InvalidInput
from storage.queries.paging import Page

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_OFFSET", "Page", "check_window"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2_147_483_647


def check_window(offset: int, limit: int, noun: str = "items") -> None:
    """Refuse a window no list can serve.

    Args:
        offset: how many items to skip, 0 or more.
        limit: how many to return, 1 to ``MAX_LIMIT``.
        noun: what the list holds, for the message ("runs").

    Raises:
        InvalidInput: either is out of range.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"a page holds 1 to {MAX_LIMIT} {noun}, not {limit}.")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"the offset is from 0 to {MAX_OFFSET} {noun}, not {offset}.")
