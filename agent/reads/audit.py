"""The audit log for managers and admins: filtered pages, filter values, and chain verification."""

from __future__ import annotations

from sqlmodel import Session

from agent.actors import AUDIT_ROLES, Actor, require
from agent.errors import InvalidInput
from storage.audit import ChainReport, verify_chain
from storage.queries.audit import AuditFacets, AuditFilter, AuditPage, audit_facets, audit_page

MAX_PAGE_SIZE = 500


def audit_log(
    actor: Actor, flt: AuditFilter, *, session: Session, page: int = 1, page_size: int = 50
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
    return audit_page(flt, session=session, page=page, page_size=page_size)


def audit_filter_values(actor: Actor, *, session: Session) -> AuditFacets:
    """The actors, actions and target types that occur in the log, for the filter controls.

    Raises:
        Forbidden: the actor is neither manager nor admin.
    """
    require(actor, AUDIT_ROLES, "read the audit log")
    return audit_facets(session=session)


def verify_audit_log(actor: Actor, *, session: Session) -> ChainReport:
    """Recompute the hash chain and report the first broken link, if any.

    Raises:
        Forbidden: the actor is neither manager nor admin.
    """
    require(actor, AUDIT_ROLES, "verify the audit log")
    return verify_chain(session)
