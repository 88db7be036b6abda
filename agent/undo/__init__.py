"""Undo (compensation): a person starts the compensating call of an executed call as a new task.

Modules:
    derive    the compensating call's arguments, from the tool's declaration (CEL expressions over
              the original call's ``args`` and ``result``)
    service   starting an undo (role, checks, the task and its link to the original call) and
              reading the links both ways

The undo task's one call goes through the same gate as any call: policy, review, the ledger,
exactly once. What is recorded is an *attempted* compensation; only the undo call's own ledger
row says whether it ran.
"""

from __future__ import annotations

from agent.undo.derive import UNDO_CALL_ID, UNDO_KEY, compensating_args
from agent.undo.service import (
    UndoAttempt,
    UndoLinks,
    UndoOffer,
    UndoStarted,
    undo_call,
    undo_links,
)

__all__ = [
    "UNDO_CALL_ID",
    "UNDO_KEY",
    "UndoAttempt",
    "UndoLinks",
    "UndoOffer",
    "UndoStarted",
    "compensating_args",
    "undo_call",
    "undo_links",
]
