"""The audit log for managers and admins: filtered pages, filter values, and chain verification."""

from __future__ import annotations

from agent.actors import AUDIT_ROLES, Actor, require
from agent.errors import InvalidInput
from agent.platform import Platform
from agent.reads.paging import Page, check_window
from storage.audit import ChainReport, verify_chain
from storage.engine import read_session
from storage.queries.audit import (
    AuditEntry,
    AuditFacets,
    AuditFilter,
    audit_facets,
    audit_page,
)

__all__ = [
    "AUDIT_PAGE",
    "AuditEntry",
    "AuditFacets",
    "AuditFilter",
    "ChainReport",
    "audit_filter_values",
    "audit_log",
    "verify_audit_log",
]

AUDIT_PAGE = 50


def audit_log(
    platform: Platform,
    actor: Actor,
    flt: AuditFilter | None = None,
    *,
    offset: int = 0,
    limit: int = AUDIT_PAGE,
) -> Page[AuditEntry]:
    """The events matching ``flt``, newest first: ``limit`` of them after the first ``offset``.

    Raises:
        Forbidden: the actor is neither manager nor admin.
        InvalidInput: the window is out of range, or the time range ends before it starts.
    """
    require(actor, AUDIT_ROLES, "read the audit log")
    check_window(offset, limit, "events")
    flt = flt or AuditFilter()
    if flt.since is not None and flt.until is not None and flt.until <= flt.since:
        raise InvalidInput("the time range ends before it starts; pick an end after the start.")
    with read_session(platform.engine) as session:
        return audit_page(flt, session=session, offset=offset, limit=limit)


def audit_filter_values(platform: Platform, actor: Actor) -> AuditFacets:
    """The actors, actions and target types that occur in the log, for the filter controls.

    Raises:
        Forbidden: the actor is neither manager nor admin.
    """
    require(actor, AUDIT_ROLES, "read the audit log")
    with read_session(platform.engine) as session:
        return audit_facets(session=session)


def verify_audit_log(platform: Platform, actor: Actor) -> ChainReport:
    """Recompute the hash chain and report the first broken link, if any.

    Raises:
        Forbidden: the actor is neither manager nor admin.
    """
    require(actor, AUDIT_ROLES, "verify the audit log")
    with read_session(platform.engine) as session:
        return verify_chain(session)
