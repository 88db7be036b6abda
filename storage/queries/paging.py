"""A page of a longer list: the items of one window, how many match in all, and where the next
window starts. Every list read returns one, so no caller can mistake a window for the whole."""

from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One window of a list.

    Attributes:
        items: the items of this window, in the list's order.
        total: how many items the whole list holds.
        offset: how many items come before this window.
        limit: the most items a window holds.
    """

    items: tuple[T, ...]
    total: int
    offset: int
    limit: int

    @property
    def next_offset(self) -> int | None:
        """Where the next window starts, or None when this one reaches the end."""
        end = self.offset + len(self.items)
        return end if end < self.total and self.items else None

    @property
    def has_more(self) -> bool:
        """Whether items follow this window."""
        return self.next_offset is not None

    @property
    def number(self) -> int:
        """This window's number, from 1, counting windows of ``limit`` items."""
        return self.offset // self.limit + 1

    @property
    def pages(self) -> int:
        """How many windows of ``limit`` items the whole list fills (at least one)."""
        return max(1, -(-self.total // self.limit))

    @property
    def last_offset(self) -> int:
        """Where the last window starts."""
        return (self.pages - 1) * self.limit

    def as_dict(self) -> dict[str, Any]:
        """The page as plain data: ``{"items", "total", "offset", "limit", "next_offset"}``,
        each item a dataclass's fields."""
        return {
            "items": [_plain(entry) for entry in self.items],
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "next_offset": self.next_offset,
        }


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value
