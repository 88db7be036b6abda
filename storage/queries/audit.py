"""The audit log as pages of read models, filtered by actor, action, target and time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from storage.models import AuditEvent
from storage.queries.paging import Page


@dataclass(frozen=True)
class AuditFilter:
    """Which events to show; every field left empty matches everything."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """The filter as SQL conditions on ``audit_events``."""
        out: list[ColumnElement[bool]] = []
        for column, value in (
            (AuditEvent.actor, self.actor),
            (AuditEvent.action, self.action),
            (AuditEvent.target_type, self.target_type),
            (AuditEvent.target_id, self.target_id),
        ):
            if value:
                out.append(col(column) == value)
        if self.since is not None:
            out.append(col(AuditEvent.at) >= self.since)
        if self.until is not None:
            out.append(col(AuditEvent.at) < self.until)
        return out


@dataclass(frozen=True)
class AuditEntry:
    """One event of the chain, as shown to people."""

    seq: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    payload: dict[str, Any]
    hash: str


@dataclass(frozen=True)
class AuditFacets:
    """The values the filters can take: who acted, which actions and target types occur."""

    actors: tuple[str, ...]
    actions: tuple[str, ...]
    target_types: tuple[str, ...]


def audit_page(
    flt: AuditFilter, *, session: Session, offset: int = 0, limit: int = 50
) -> Page[AuditEntry]:
    """The events matching ``flt``, newest first: ``limit`` of them after the first ``offset``."""
    conditions = flt.conditions()
    total = int(
        session.execute(
            sa.select(sa.func.count()).select_from(AuditEvent).where(*conditions)
        ).scalar_one()
    )
    events = session.exec(
        select(AuditEvent)
        .where(*conditions)
        .order_by(col(AuditEvent.seq).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    entries = tuple(
        AuditEntry(
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            payload=dict(event.payload),
            hash=event.hash,
        )
        for event in events
    )
    return Page(entries, total, offset, limit)


def audit_facets(*, session: Session) -> AuditFacets:
    """The distinct actors, actions and target types in the log, sorted."""

    def distinct(column: Any) -> tuple[str, ...]:
        values = session.execute(sa.select(col(column)).distinct().order_by(col(column))).scalars()
        return tuple(str(value) for value in values if value)

    return AuditFacets(
        actors=distinct(AuditEvent.actor),
        actions=distinct(AuditEvent.action),
        target_types=distinct(AuditEvent.target_type),
    )
