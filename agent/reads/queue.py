"""Reading the review queue: open reviews most urgent first, filter choices, and one review's
context for the person deciding it, with a dry run of an edit before it is submitted.

Operators read the queue to decide; managers read it to oversee it (and override a block where
its rule names them). Engineers and admins are not shown it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.actors import QUEUE_ROLES, Actor, require
from agent.errors import NotFound, ServiceError
from agent.platform import Platform
from agent.reads.paging import Page, check_window
from agent.reviews import Quorum, holder_of, parse_edited_args, permitted_decisions
from agent.tools.validation import validate
from storage.engine import read_session
from storage.enums import DecisionKind, ReviewKind
from storage.queries.queue import (
    QueueFacets,
    QueueFilter,
    QueueItem,
    queue_counts,
    queue_facets,
    review_detail,
    review_queue,
)
from storage.queries.records import DecisionRecord, ReviewRecord, TraceStep
from storage.types import utcnow

__all__ = [
    "QUEUE_PAGE",
    "ArgChange",
    "EditPreview",
    "QueueFacets",
    "QueueFilter",
    "QueueItem",
    "QueueSnapshot",
    "ReviewContext",
    "diff_args",
    "open_reviews",
    "preview_edit",
    "queue_choices",
    "review_context",
]

log = logging.getLogger(__name__)

QUEUE_PAGE = 100


@dataclass(frozen=True)
class QueueSnapshot:
    """A page of the open reviews, most urgent first, and how many match in all.

    Attributes:
        page: the reviews of this window (SLA due, then risk); its total counts every match.
        overdue_count: how many of all the matching reviews are past their SLA.
        as_of: when this was read; SLA countdowns are relative to it.
    """

    page: Page[QueueItem]
    overdue_count: int
    as_of: datetime

    @property
    def items(self) -> tuple[QueueItem, ...]:
        """The reviews of this page."""
        return self.page.items

    @property
    def open_count(self) -> int:
        """How many open reviews match the filter."""
        return self.page.total

    @property
    def truncated(self) -> bool:
        """Whether more reviews match than ``items`` holds."""
        return self.open_count > len(self.items)


def open_reviews(
    platform: Platform,
    actor: Actor,
    flt: QueueFilter | None = None,
    *,
    offset: int = 0,
    limit: int = QUEUE_PAGE,
    now: datetime | None = None,
) -> QueueSnapshot:
    """The open reviews ``flt`` matches, most urgent first, one page of them, with counts.

    Raises:
        Forbidden: the actor is neither an operator nor a manager.
        InvalidInput: the window is out of range (``agent.reads.paging``).
    """
    require(actor, QUEUE_ROLES, "read the review queue")
    check_window(offset, limit, "reviews")
    flt = flt or QueueFilter()
    moment = now or utcnow()
    with read_session(platform.engine) as session:
        items = review_queue(
            session=session,
            agent=flt.agent,
            version=flt.version,
            kind=flt.kind,
            rule_id=flt.rule_id,
            tool=flt.tool,
            limit=limit,
            offset=offset,
        )
        open_count, overdue_count = queue_counts(flt, session=session, now=moment)
    return QueueSnapshot(Page(tuple(items), open_count, offset, limit), overdue_count, moment)


def waiting_count(platform: Platform, actor: Actor) -> int | None:
    """How many reviews wait for a person (what the navigation shows beside the queue); None
    for those who do not work the queue."""
    if not actor.has_any(QUEUE_ROLES):
        return None
    with read_session(platform.engine) as session:
        return queue_counts(QueueFilter(), session=session, now=utcnow())[0]


def queue_choices(platform: Platform, actor: Actor) -> QueueFacets:
    """The agents, versions, kinds, rules and tools that open reviews have, to filter by.

    Raises:
        Forbidden: the actor is neither an operator nor a manager.
    """
    require(actor, QUEUE_ROLES, "read the review queue")
    with read_session(platform.engine) as session:
        return queue_facets(session=session)


@dataclass(frozen=True)
class ReviewContext:
    """Everything a person needs to decide one review.

    Attributes:
        review: the review as it stands now (it may have been decided meanwhile).
        task_id: the task the run works on.
        task_input: that task's input.
        rule: the policy rule that fired, as the pinned version states it.
        trace: the run's steps up to the moment it asked.
        decisions: decisions already taken on this review.
        args_schema: the JSON schema an edit must meet (the tool's arguments, or the output
            contract for an output review); None when the actor may not edit it, or the
            schema cannot be loaded.
        permitted: what the reading actor may decide on it (empty once it is decided).
        quorum: its four-eyes count (who approved so far, how many must).
        approval_refusal: why the reading actor may not approve it although their role may
            (they submitted the task, or already approved), else None.
        holder: who holds it now (None: nobody, or the hold lapsed).
    """

    review: ReviewRecord
    task_id: int
    task_input: dict[str, Any]
    rule: dict[str, Any] | None
    trace: tuple[TraceStep, ...]
    decisions: tuple[DecisionRecord, ...]
    args_schema: Mapping[str, Any] | None
    permitted: frozenset[DecisionKind] = field(default_factory=frozenset)
    quorum: Quorum | None = None
    approval_refusal: str | None = None
    holder: str | None = None


def review_context(platform: Platform, actor: Actor, review_id: int) -> ReviewContext:
    """One review with its task, proposed call, rule, version, trace so far and edit schema.

    Raises:
        Forbidden: the actor is neither an operator nor a manager.
        NotFound: there is no such review.
    """
    require(actor, QUEUE_ROLES, f"read review {review_id}")
    with read_session(platform.engine) as session:
        detail = review_detail(review_id, session=session)
    if detail is None:
        raise NotFound(f"review {review_id} does not exist.")
    review = detail.review
    permitted = permitted_decisions(actor, review) if review.is_open else frozenset()
    quorum = Quorum.of(
        review.id,
        review.rule_id,
        review.kind,
        review.approvals_required,
        review.approved_by,
        submitted_by=detail.submitted_by,
        task_id=detail.task_id,
    )
    refusal = None
    if DecisionKind.APPROVE in permitted or DecisionKind.EDIT in permitted:
        refusal = quorum.refusal(actor.name, DecisionKind.APPROVE)
        permitted = frozenset(
            kind for kind in permitted if quorum.refusal(actor.name, kind) is None
        )
    return ReviewContext(
        review=review,
        task_id=detail.task_id,
        task_input=detail.task_input,
        rule=detail.rule,
        trace=detail.steps,
        decisions=detail.decisions,
        args_schema=_edit_schema(platform, review) if DecisionKind.EDIT in permitted else None,
        permitted=permitted,
        quorum=quorum,
        approval_refusal=refusal,
        holder=holder_of(review.assigned_to, review.assigned_at, now=utcnow()),
    )


def _edit_schema(platform: Platform, review: ReviewRecord) -> Mapping[str, Any] | None:
    try:
        version = platform.versions.get(review.version_id)
    except ServiceError:
        # The version cannot be loaded in this process (a tool it names is not registered
        # here): the pane still opens, and the service re-checks any edit on submit.
        log.warning("no edit schema for review %d: version %d", review.id, review.version_id)
        return None
    if review.kind is ReviewKind.OUTPUT_INVALID:
        return version.spec.output.schema
    spec = version.tool_specs.get(review.tool or "")
    return spec.args_schema if spec is not None else None


@dataclass(frozen=True)
class ArgChange:
    """One difference between the proposed arguments and the edited ones.

    Attributes:
        path: where, as ``amount`` or ``address.city``.
        change: ``"changed"``, ``"added"`` or ``"removed"``.
        before: the proposed value (None when added).
        after: the edited value (None when removed).
    """

    path: str
    change: str
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class EditPreview:
    """An edit checked before it is submitted.

    Attributes:
        args: the parsed arguments; None when the text is not a JSON object.
        problems: one sentence per problem (bad JSON, or each schema violation).
        changes: the differences from the proposed arguments.
    """

    args: dict[str, Any] | None
    problems: tuple[str, ...]
    changes: tuple[ArgChange, ...]

    @property
    def submittable(self) -> bool:
        """Valid against the schema and different from the proposal."""
        return self.args is not None and not self.problems and bool(self.changes)


def preview_edit(context: ReviewContext, text: str) -> EditPreview:
    """Check edited arguments against the schema and list how they differ from the proposal.

    A dry run only: submitting re-validates and re-applies the policy, which this does not.
    """
    try:
        args = parse_edited_args(text)
    except ServiceError as exc:
        return EditPreview(None, (str(exc),), ())
    problems: tuple[str, ...] = ()
    if context.args_schema is not None:
        root = "output" if context.review.kind is ReviewKind.OUTPUT_INVALID else "args"
        try:
            problems = tuple(validate(context.args_schema, args, root=root, what="the edit"))
        except ServiceError as exc:
            problems = (str(exc),)
    return EditPreview(args, problems, tuple(diff_args(context.review.args or {}, args)))


def diff_args(
    before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = ""
) -> list[ArgChange]:
    """The differences between two argument objects, nested objects compared field by field."""
    changes: list[ArgChange] = []
    for key in sorted({*before, *after}):
        path = f"{prefix}{key}"
        if key not in after:
            changes.append(ArgChange(path, "removed", before=before[key]))
        elif key not in before:
            changes.append(ArgChange(path, "added", after=after[key]))
        elif isinstance(before[key], Mapping) and isinstance(after[key], Mapping):
            changes.extend(diff_args(before[key], after[key], f"{path}."))
        elif before[key] != after[key]:
            changes.append(ArgChange(path, "changed", before[key], after[key]))
    return changes
