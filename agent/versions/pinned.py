"""Open reviews still pinned to an agent's older versions.

A review stays bound to the version that raised it when an engineer activates another one, and
its run resumes on that version once someone decides. Before rolling a version back or
retiring it, an engineer wants to see which of those are still waiting. An evaluation's reviews
are its scripted reviewer's to answer, so they are never listed here.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col, select

from agent.actors import READ_ROLES, Actor, require
from agent.platform import Platform
from agent.reads.paging import DEFAULT_LIMIT, Page, check_window
from agent.versions.models import PinnedReview, PinnedReviews
from agent.versions.rows import agent_row, version_numbers
from storage.engine import read_session
from storage.enums import ReviewStatus
from storage.models import Review
from storage.queries.production import of_production_run


def pinned_reviews(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> PinnedReviews:
    """The open reviews of ``agent_name`` raised by a version other than the active one.

    Args:
        platform: the installation.
        actor: anyone who may read versions.
        agent_name: the agent.
        offset: how many of the reviews (oldest first) to skip.
        limit: how many to return after them; the counts cover all.

    Raises:
        NotFound: no such agent.
        InvalidInput: the window is out of range.
    """
    require(actor, READ_ROLES, f"read the open reviews of {agent_name!r}")
    check_window(offset, limit, "reviews")
    with read_session(platform.engine) as session:
        agent = agent_row(session, agent_name)
        numbers = version_numbers(session, agent)
        conditions = [
            col(Review.agent_id) == agent.id,
            col(Review.status).in_(ReviewStatus.open_statuses()),
            of_production_run(Review.run_id),
        ]
        if agent.active_version_id is not None:
            conditions.append(col(Review.version_id) != agent.active_version_id)
        counts = session.execute(
            sa.select(col(Review.version_id), sa.func.count())
            .where(*conditions)
            .group_by(col(Review.version_id))
        ).all()
        rows = session.exec(
            select(Review)
            .where(*conditions)
            .order_by(col(Review.created_at), col(Review.id))
            .offset(offset)
            .limit(limit)
        ).all()
        pinned = tuple(
            PinnedReview(
                id=review.id or 0,
                run_id=review.run_id,
                version=numbers.get(review.version_id, 0),
                status=review.status.value,
                tool=review.tool,
                rule_id=review.rule_id,
                created_at=review.created_at,
                sla_due_at=review.sla_due_at,
            )
            for review in rows
        )
        return PinnedReviews(
            by_version={numbers.get(version_id, 0): int(n) for version_id, n in sorted(counts)},
            reviews=Page(pinned, sum(int(n) for _version, n in counts), offset, limit),
        )
