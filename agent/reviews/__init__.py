"""Deciding reviews: the human side of governance, used by the CLI and the console alike.

Modules:
    decide       approve, edit and approve, reject, override; the compare-and-set and its record
    permissions  who may take which decision on which kind of review
    edits        parsing edits and the dry run of a decision through the one gate
    bulk         several approvals or rejections at once, each on its own
    quorum       four-eyes: approvals by distinct people, never the task's submitter
    assignment   taking a review (a hold that lapses), giving it back, taking the next one
    expiry       the SLA clock: expiry to the next tier or to a rejection
"""

from __future__ import annotations

from agent.reviews.assignment import (
    Hold,
    hold_minutes,
    holder_of,
    next_review,
    release_review,
    take_review,
)
from agent.reviews.bulk import BULK_DECISIONS, BulkOutcome, decide_many
from agent.reviews.decide import (
    DecisionResult,
    approve,
    decide,
    edit_and_approve,
    override,
    reject,
)
from agent.reviews.edits import parse_edited_args
from agent.reviews.expiry import expire_overdue, expire_review
from agent.reviews.permissions import PERSON_DECISIONS, Decidable, permitted_decisions
from agent.reviews.quorum import Quorum

__all__ = [
    "BULK_DECISIONS",
    "PERSON_DECISIONS",
    "BulkOutcome",
    "Decidable",
    "DecisionResult",
    "Hold",
    "Quorum",
    "approve",
    "decide",
    "decide_many",
    "edit_and_approve",
    "expire_overdue",
    "expire_review",
    "hold_minutes",
    "holder_of",
    "next_review",
    "override",
    "parse_edited_args",
    "permitted_decisions",
    "reject",
    "release_review",
    "take_review",
]
