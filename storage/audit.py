"""The audit log as a hash chain: append events, and verify that none was altered or removed.

Each event stores ``prev_hash`` (the previous event's hash) and ``hash``, the SHA-256 of its own
canonical JSON, which includes ``seq`` and ``prev_hash``. Editing a row breaks its own hash;
deleting or reordering rows breaks the link to the next one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import AuditEvent
from storage.tables import AUDIT_EVENTS
from storage.types import utcnow

GENESIS_HASH = "0" * 64
_CHAIN_LOCK_KEY = 0x5354455741524401  # PostgreSQL advisory lock that serializes appends


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(event: AuditEvent) -> str:
    at = event.at.astimezone(UTC).isoformat(timespec="microseconds")
    body = {
        "seq": event.seq,
        "at": at,
        "actor": event.actor,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "payload": event.payload,
        "prev_hash": event.prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


_LAST_LINK = (
    sa.select(AUDIT_EVENTS.c.seq, AUDIT_EVENTS.c.hash).order_by(AUDIT_EVENTS.c.seq.desc()).limit(1)
)
_APPEND = sa.insert(AUDIT_EVENTS).returning(AUDIT_EVENTS.c.id)
_CHAIN_LOCK = sa.select(sa.func.pg_advisory_xact_lock(_CHAIN_LOCK_KEY))


def append_event(
    executor: Session | sa.Connection,
    *,
    actor: str,
    action: str,
    target_type: str = "",
    target_id: str | int = "",
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction (a session's, or a Core
    connection's).

    Appends are serialized (an advisory lock on PostgreSQL; the write transaction's own lock on
    SQLite), so two workers never link to the same predecessor.
    """
    connection = executor.connection() if isinstance(executor, Session) else executor
    if connection.dialect.name == "postgresql":
        connection.execute(_CHAIN_LOCK)
    last = connection.execute(_LAST_LINK).first()
    # Round-trip the payload through JSON so the stored form is exactly what gets hashed.
    stored_payload = json.loads(canonical_json(payload or {}))
    moment = (at or utcnow()).astimezone(UTC)
    event = AuditEvent(
        seq=(last.seq + 1) if last else 1,
        at=moment,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        payload=stored_payload,
        prev_hash=last.hash if last else GENESIS_HASH,
        hash="",
    )
    event.hash = event_hash(event)
    event.id = connection.execute(_APPEND, event.model_dump(exclude={"id"})).scalar_one()
    return event


@dataclass(frozen=True)
class ChainReport:
    """Result of verifying the chain: ``ok`` with the count, or the first bad event and why."""

    count: int
    first_bad_seq: int | None = None
    first_bad_id: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


def verify_chain(session: Session, *, batch_size: int = 5000) -> ChainReport:
    """Recompute the whole chain in ``seq`` order and report the first broken link."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    last_seq = 0
    while True:
        batch = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.seq) > last_seq)
            .order_by(col(AuditEvent.seq))
            .limit(batch_size)
        ).all()
        if not batch:
            return ChainReport(count=count)
        for event in batch:
            problem = ""
            if event.seq != expected_seq:
                problem = (
                    f"expected sequence number {expected_seq}, found {event.seq} "
                    "(events were deleted)"
                )
            elif event.prev_hash != expected_prev:
                problem = (
                    "its previous-hash does not match the event before it (deleted or reordered)"
                )
            elif event_hash(event) != event.hash:
                problem = "its content does not match its hash (altered)"
            if problem:
                return ChainReport(
                    count=count, first_bad_seq=event.seq, first_bad_id=event.id, problem=problem
                )
            count += 1
            expected_prev = event.hash
            expected_seq += 1
            last_seq = event.seq
        session.expunge_all()
