"""Writes that happen once per idempotency key, the contract of the demo's idempotent tools.

A repeated call with the same key returns the row the first call wrote, marked as a duplicate,
and writes nothing; when two attempts race, the one whose insert loses on the key's unique
constraint reads and returns the winner's row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from agent.tools.base import ToolContext
from agent.tools.fencing import fenced_session
from storage.engine import read_session


class KeyedRow(Protocol):
    idempotency_key: str


Row = TypeVar("Row", bound=KeyedRow)


def write_once(
    ctx: ToolContext,
    model: type[Row],
    write: Callable[[Session], tuple[Row, bool]],
    answer: Callable[[Row, bool], dict[str, Any]],
) -> dict[str, Any]:
    """The answer for the row the call's idempotency key names, written by ``write`` (under
    the call's fence) if no such row exists yet.

    Args:
        ctx: the call's context: its database, idempotency key and fence.
        model: the table holding an ``idempotency_key`` column with a unique constraint.
        write: adds the row in the given session (it may raise ``ToolError``); returns the row
            and whether it is an existing equivalent one rather than a new one.
        answer: the tool's result for a row and whether the call was a duplicate.
    """

    key = ctx.idempotency_key

    def by_key(session: Session) -> Row | None:
        column: Any = model.idempotency_key
        return session.exec(select(model).where(column == key)).first()

    try:
        with fenced_session(ctx) as session:
            existing = by_key(session)
            if existing is not None:
                return answer(existing, True)
            row, duplicate = write(session)
            session.flush()
            return answer(row, duplicate)
    except IntegrityError:
        # Another attempt with the same key committed first: its row is the answer.
        with read_session(ctx.engine) as session:
            winner = by_key(session)
        if winner is None:
            raise
        return answer(winner, True)
