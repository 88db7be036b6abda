"""How times, countdowns and JSON read in tables: short, and relative to one ``now``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any


def duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``3 h 5 min`` or ``2 d 4 h``."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def countdown(due: datetime | None, now: datetime) -> str:
    """Time left before an SLA, or how long it is overdue."""
    if due is None:
        return "no SLA"
    left = (due - now).total_seconds()
    return f"{duration(left)} left" if left >= 0 else f"overdue {duration(left)}"


def overdue(due: datetime | None, now: datetime) -> bool:
    """Whether an SLA due at ``due`` has passed at ``now``."""
    return due is not None and due < now


def ago(moment: datetime | None, now: datetime) -> str:
    """``12 s ago``, or ``-`` when there is no moment."""
    if moment is None:
        return "-"
    return f"{duration((now - moment).total_seconds())} ago"


def when(moment: datetime | None) -> str:
    """A timestamp as people read it, in UTC."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def compact(value: Any, limit: int = 120) -> str:
    """``value`` as one line of JSON, cut at ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def option_label(labels: Mapping[Any, str], option: Any) -> str:
    """How a select widget names ``option``: pass ``functools.partial(option_label, labels)``.

    A module-level function with plain data (not a lambda) keeps widget metadata picklable,
    which the serializable session state of AppTest runs requires.
    """
    return labels.get(option, str(option))


def money(amount: Any, currency: Any = None) -> str:
    """An amount as money: ``$349.00``, ``349.00 EUR``; a dash when there is none.

    The demo's agents speak US dollars (their rules say "$100"), so an amount with no currency
    reads as dollars."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return "-"
    code = str(currency or "USD").upper()
    return f"${amount:,.2f}" if code == "USD" else f"{amount:,.2f} {code}"
