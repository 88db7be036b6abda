"""The audit log for managers and admins: filtered pages, filter values, and chain verification."""

from __future__ import annotations

from agent.actors import AUDIT_ROLES, Actor, require
from agent.errors import InvalidInput
from agent.platform import Platform
from storage.audit import ChainReport, verify_chain
from storage.engine import read_session
from storage.queries.audit import (
    AuditEntry,
    AuditFacets,
    AuditFilter,
    AuditPage,
    audit_facets,
    audit_page,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "AuditEntry",
    "AuditFacets",
    "AuditFilter",
    "AuditPage",
    "ChainReport",
    "audit_filter_values",
    "audit_log",
    "verify_audit_log",
]

MAX_PAGE_SIZE = 500


def audit_log(
    platform: Platform, actor: Actor, flt: AuditFilter, *, page: int = 1, page_size: int = 50
) -> AuditPage:
    """Page ``page`` (1-based) of the events matching ``flt``, newest first.

    Raises:
        Forbidden: the actor is neither manager nor admin.
        InvalidInput: the page size is out of range, or the time range ends before it starts.
    """
    require(actor, AUDIT_ROLES, "read the audit log")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"a page holds 1 to {MAX_PAGE_SIZE} events, not {page_size}.")
    if flt.since is not None and flt.until is not None and flt.until <= flt.since:
        raise InvalidInput("the time range ends before it starts; pick an end after the start.")
    with read_session(platform.engine) as session:
        return audit_page(flt, session=session, page=page, page_size=page_size)


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
