"""The committed rows a batch of trace segments is built from, read in a few queries.

A segment is the part of a run's trace committed between two stops of the run (it parked for a
person, or finished); its bounds were saved before it was sent (``agent.telemetry.cursor``), so
the rows read here are the same however often it is sent.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import read_session
from storage.enums import StepKind, StepStatus
from storage.models import ReviewDecision
from storage.tables import AGENT_VERSIONS, AGENTS, REVIEWS, RUNS, STEPS, table

REVIEW_DECISIONS = table(ReviewDecision)
# The steps a review can answer: the guardrail that escalated or blocked a call, or the
# attempt whose outcome nobody knows.
_REVIEWED_KINDS = (StepKind.APPLY_GUARDRAIL, StepKind.EXECUTE_TOOL)
_REVIEWED_STATUSES = (StepStatus.ESCALATED, StepStatus.DENIED, StepStatus.ERROR)


@dataclass(frozen=True)
class Segment:
    """Steps ``first_seq``..``last_seq`` of a run, the ``index``-th segment sent; the segment
    before it starts at ``previous_seq`` (0: none). ``status`` is the run's status when the
    segment was planned."""

    run_id: int
    first_seq: int
    last_seq: int
    previous_seq: int
    status: str
    index: int


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    task_id: int
    agent_id: int
    agent: str
    version_id: int
    version: int
    policy_hash: str
    planner: str
    error_class: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass
class SegmentRows:
    """Everything a segment's spans are made of."""

    segment: Segment
    run: RunInfo
    steps: list[Mapping[str, Any]] = field(default_factory=list)
    # When the segment's work started (a review's waiting before it aside) and ended.
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class BatchRows:
    segments: list[SegmentRows]
    reviews: dict[int, Mapping[str, Any]]
    decisions: dict[int, Mapping[str, Any]]
    # (run_id, call_id) -> the steps a review of that call may answer, in seq order.
    reviewed: dict[tuple[int, str], list[Mapping[str, Any]]]


def load(engine: Engine, segments: Sequence[Segment], *, content: bool = False) -> BatchRows:
    """Read the runs, steps, reviews and decisions of ``segments``; the steps' documents whole
    only with ``content`` (else only the fields spans carry, extracted by the database)."""
    if not segments:
        return BatchRows([], {}, {}, {})
    run_ids = sorted({s.run_id for s in segments})
    with read_session(engine) as session:
        connection = session.connection()
        runs = {
            row.run_id: RunInfo(
                run_id=row.run_id,
                task_id=row.task_id,
                agent_id=row.agent_id,
                agent=row.agent,
                version_id=row.version_id,
                version=row.version,
                policy_hash=row.policy_hash,
                planner=row.planner or "",
                error_class=row.error_class.value if row.error_class else None,
                created_at=row.created_at,
                finished_at=row.finished_at,
            )
            for row in connection.execute(
                sa.select(
                    RUNS.c.id.label("run_id"),
                    RUNS.c.task_id,
                    RUNS.c.agent_id,
                    RUNS.c.version_id,
                    RUNS.c.error_class,
                    RUNS.c.created_at,
                    RUNS.c.finished_at,
                    AGENTS.c.name.label("agent"),
                    AGENT_VERSIONS.c.number.label("version"),
                    AGENT_VERSIONS.c.policy_hash,
                    AGENT_VERSIONS.c.spec[("planner", "kind")].as_string().label("planner"),
                )
                .join(AGENTS, AGENTS.c.id == RUNS.c.agent_id)
                .join(AGENT_VERSIONS, AGENT_VERSIONS.c.id == RUNS.c.version_id)
                .where(RUNS.c.id.in_(run_ids))
            )
        }
        bounds = sa.or_(
            *(
                sa.and_(STEPS.c.run_id == s.run_id, STEPS.c.seq.between(s.first_seq, s.last_seq))
                for s in segments
            )
        )
        # The spans' steps; the others (observations, final outputs, the root) only bound
        # the segment's time, read as aggregates.
        kinds = _SPAN_KINDS + ((StepKind.OBSERVATION,) if content else ())
        steps = [
            _step(dict(row._mapping), content)
            for row in connection.execute(
                sa.select(*(_FULL if content else _LEAN))
                .where(bounds)
                .where(STEPS.c.kind.in_(kinds))
                .order_by(STEPS.c.run_id, STEPS.c.seq)
            )
        ]
        working = sa.case((STEPS.c.kind != StepKind.HUMAN_APPROVAL, STEPS.c.started_at))
        times = {
            row.run_id: (_moment(row.working_start) or _moment(row.start), _moment(row.end))
            for row in connection.execute(
                sa.select(
                    STEPS.c.run_id,
                    sa.func.min(working).label("working_start"),
                    sa.func.min(STEPS.c.started_at).label("start"),
                    sa.func.max(sa.func.coalesce(STEPS.c.ended_at, STEPS.c.started_at)).label(
                        "end"
                    ),
                )
                .where(bounds)
                .group_by(STEPS.c.run_id)
            )
        }
        review_ids = sorted(
            {
                int(rid)
                for s in steps
                if s["kind"] is StepKind.HUMAN_APPROVAL
                and isinstance(rid := (s["attributes"] or {}).get("review_id"), int)
            }
        )
        reviews: dict[int, Mapping[str, Any]] = {}
        decisions: dict[int, Mapping[str, Any]] = {}
        reviewed: dict[tuple[int, str], list[Mapping[str, Any]]] = defaultdict(list)
        if review_ids:
            for row in connection.execute(sa.select(REVIEWS).where(REVIEWS.c.id.in_(review_ids))):
                reviews[row.id] = dict(row._mapping)
            for row in connection.execute(
                sa.select(REVIEW_DECISIONS)
                .where(REVIEW_DECISIONS.c.review_id.in_(review_ids))
                .order_by(REVIEW_DECISIONS.c.id)
            ):
                decisions[row.review_id] = dict(row._mapping)  # the last decision wins
            call_ids = sorted({r["call_id"] for r in reviews.values() if r["call_id"]})
            if call_ids:
                for row in connection.execute(
                    sa.select(STEPS.c.id, STEPS.c.run_id, STEPS.c.seq, STEPS.c.call_id)
                    .where(STEPS.c.run_id.in_(run_ids))
                    .where(STEPS.c.call_id.in_(call_ids))
                    .where(STEPS.c.kind.in_(_REVIEWED_KINDS))
                    .where(STEPS.c.status.in_(_REVIEWED_STATUSES))
                    .order_by(STEPS.c.seq)
                ):
                    reviewed[(row.run_id, row.call_id)].append(dict(row._mapping))
    by_run: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for step in steps:
        by_run[step["run_id"]].append(step)
    batch = []
    for segment in segments:
        info = runs.get(segment.run_id)
        if info is None:
            continue
        mine = [
            s for s in by_run[segment.run_id] if segment.first_seq <= s["seq"] <= segment.last_seq
        ]
        start, end = times.get(segment.run_id, (None, None))
        batch.append(SegmentRows(segment, info, mine, start, end))
    return BatchRows(batch, reviews, decisions, dict(reviewed))


_COLUMNS = (
    STEPS.c.id,
    STEPS.c.run_id,
    STEPS.c.seq,
    STEPS.c.kind,
    STEPS.c.name,
    STEPS.c.call_id,
    STEPS.c.status,
    STEPS.c.error_class,
    STEPS.c.started_at,
    STEPS.c.ended_at,
)
_FULL = (*_COLUMNS, STEPS.c.attributes, STEPS.c.input, STEPS.c.output)
# Reading a guardrail's decision-time facts or a proposal's history whole costs more than the
# rest of the export together: without contents, the database extracts the few fields a span
# carries. The observations (tool results) are only read for contents.
_LEAN = (
    *_COLUMNS,
    STEPS.c.input["turn"].as_integer().label("turn"),
    STEPS.c.output["reason"].as_string().label("reason"),
    STEPS.c.output["stage"].as_string().label("stage"),
    STEPS.c.output["rule_id"].as_string().label("rule_id"),
    STEPS.c.output[("policy", "policy_hash")].as_string().label("policy_hash"),
    STEPS.c.output[("policy", "matched")].as_string().label("matched"),
    STEPS.c.output["usage"].as_string().label("usage"),
    STEPS.c.output["error"].as_string().label("error"),
    STEPS.c.attributes["authorized"].as_boolean().label("authorized"),
    STEPS.c.attributes["attempt"].as_integer().label("attempt"),
    STEPS.c.attributes["health"].as_string().label("health"),
    STEPS.c.attributes["review_id"].as_integer().label("review_id"),
    STEPS.c.attributes["cost_usd"].as_float().label("cost_usd"),
    STEPS.c.attributes["model"].as_string().label("model"),
)
_SPAN_KINDS = (
    StepKind.PROPOSAL,
    StepKind.APPLY_GUARDRAIL,
    StepKind.EXECUTE_TOOL,
    StepKind.HUMAN_APPROVAL,
)
_ATTRIBUTES = ("authorized", "attempt", "health", "review_id", "cost_usd", "model")


def _step(row: dict[str, Any], content: bool) -> dict[str, Any]:
    """A step row with its ``input`` and ``output`` documents (whole, or the extracted part)."""
    if content:
        return row
    row["attributes"] = {name: row.pop(name) for name in _ATTRIBUTES}
    row["input"] = {"turn": row.pop("turn")}
    policy = {"policy_hash": row.pop("policy_hash"), "matched": _document(row.pop("matched"))}
    row["output"] = {
        "reason": row.pop("reason"),
        "stage": row.pop("stage"),
        "rule_id": row.pop("rule_id"),
        "usage": _document(row.pop("usage")),
        "error": row.pop("error"),
        "policy": policy,
    }
    return row


def _document(text: str | None) -> Any:
    """A JSON document the database extracted as text (decoded only where there is one)."""
    return json.loads(text) if text else None


def _moment(value: datetime | str | None) -> datetime | None:
    # SQLite hands aggregates back as the stored text: naive UTC.
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)
