"""Writes a tool makes only while its call's claim is current.

A worker can pause (a long GC, a stopped VM) past its lease and wake up inside a tool, after
another worker took the run over, asked a person about the call, and maybe heard "it did not
happen". A tool that writes to a database checks the call's fence (the lease owner and claim
number) in the same transaction as its write, so a write under a stale claim never commits;
a call the runtime stopped waiting for (its timeout passed) cannot write back either.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlmodel import Session

from agent.errors import FenceLost
from agent.tools.base import ToolContext
from storage.engine import write_session
from storage.tables import RUNS
from storage.types import utcnow

_TOUCH_RUN = (
    sa.update(RUNS)
    .where(RUNS.c.id == sa.bindparam("run_id"))
    .where(RUNS.c.lease_owner == sa.bindparam("owner"))
    .where(RUNS.c.claims == sa.bindparam("claim_no"))
    .values(heartbeat_at=sa.bindparam("now"))
)


def check_fence(connection: sa.Connection, ctx: ToolContext) -> None:
    """Raise ``FenceLost`` unless the call's claim still holds the run, inside the caller's
    write transaction (the run row stays locked until it ends, so no takeover can slip in
    between this check and the commit).

    Raises:
        FenceLost: the runtime stopped waiting for the call, or another claim holds the run.
    """
    if ctx.cancelled.is_set():
        raise FenceLost("the call outlived its timeout; nothing was written")
    if ctx.fence is None:
        return
    fence = ctx.fence
    touched = connection.execute(
        _TOUCH_RUN,
        {"run_id": fence.run_id, "owner": fence.owner, "claim_no": fence.claim_no, "now": utcnow()},
    ).rowcount
    if touched != 1:
        raise FenceLost(
            f"run {fence.run_id} is no longer held by claim {fence.claim_no} of {fence.owner}; "
            "nothing was written"
        )


@contextmanager
def fenced_session(ctx: ToolContext) -> Iterator[Session]:
    """A write transaction on ``ctx.engine`` that commits only under the call's current claim.

    Raises:
        FenceLost: at the start or at the end, if the claim is no longer current; nothing is
            written.
    """
    with write_session(ctx.engine) as session:
        check_fence(session.connection(), ctx)
        yield session
        if ctx.cancelled.is_set():
            raise FenceLost("the call outlived its timeout; nothing was written")
