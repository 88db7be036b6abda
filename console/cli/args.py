"""Argument types every command shares, so a number or a JSON object is checked once, the same way.

Each type refuses what would otherwise reach the database or a service and fail there with a
traceback: ids beyond the database's INTEGER, negative limits, NaN or infinite durations and
rates, an empty ``--as``, JSON too large, too deep or carrying what the database cannot store.
``Parser`` turns every argparse error into one line on standard error (exit status 2), as the
README promises for every usage error.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from agent.errors import InvalidInput
from agent.inputs import MAX_ID, MAX_JSON_BYTES, parse_json_object
from agent.reads.paging import MAX_LIMIT, MAX_OFFSET
from agent.tasks import MAX_PRIORITY, MIN_PRIORITY

MAX_CONCURRENCY = 64
MAX_COUNT = 1_000_000
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_ARGUMENT_PREFIX = re.compile(r"argument ([^:]+): (must |needs |is |has |holds |names )")


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``steward: ...``, with exit status 2."""

    def error(self, message: str) -> NoReturn:
        # "argument --limit: must be ..." reads better as "--limit must be ...".
        text = _ARGUMENT_PREFIX.sub(r"\1 \2", " ".join(message.split()), count=1)
        self.exit(2, f"steward: {text} (see: {self.prog} --help)\n")


def argv_problem(argv: Sequence[str]) -> str | None:
    """Why the raw arguments cannot be used at all, or None.

    Python decodes bytes that are not UTF-8 into lone surrogates; such text cannot be stored,
    printed or compared with the database, so it is refused before anything else runs.
    """
    for position, argument in enumerate(argv, start=1):
        if _BAD_CHARACTER.search(argument):
            return (
                f"argument {position} is not valid UTF-8 text; "
                "pass names, reasons and JSON as UTF-8."
            )
    return None


def whole_number(low: int, high: int, what: str) -> Callable[[str], int]:
    """A type for whole numbers from ``low`` to ``high``; ``what`` names them in the message."""

    def parse(text: str) -> int:
        value = int(text) if _INTEGER.fullmatch(text.strip()) else None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be {what}: a whole number from {low} to {high}, not {_shown(text)}."
            )
        return value

    return parse


def record_id(what: str) -> Callable[[str], int]:
    """Ids of stored rows (and version numbers): 1 to the largest SQL INTEGER."""
    return whole_number(1, MAX_ID, what)


LIMIT = whole_number(1, MAX_LIMIT, "how many to show")
OFFSET = whole_number(0, MAX_OFFSET, "how many to skip")
PRIORITY = whole_number(MIN_PRIORITY, MAX_PRIORITY, "a priority (higher runs first)")
CONCURRENCY = whole_number(1, MAX_CONCURRENCY, "how many runs at once")
COUNT = whole_number(1, MAX_COUNT, "how many to submit")


def positive_number(low: float, high: float, what: str) -> Callable[[str], float]:
    """A type for finite numbers above ``low`` (exclusive when 0) and at most ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inclusive = low > 0
        fits = low <= value <= high if inclusive else low < value <= high
        if not (math.isfinite(value) and fits):
            lowest = f"from {low:g}" if inclusive else f"above {low:g}"
            raise argparse.ArgumentTypeError(
                f"must be {what}: a number {lowest} up to {high:g}, not {_shown(text)}."
            )
        return value

    return parse


LEASE = positive_number(1.0, 86_400.0, "a lease in seconds")
POLL = positive_number(0.01, 60.0, "seconds between claims")
RATE = positive_number(0.0, 1000.0, "tasks per second")


def user_name(text: str) -> str:
    """``--as``: a non-empty user name (whether it exists is the users table's answer)."""
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError("needs a user name; leave it out to act as $STEWARD_USER.")
    return name


def moment(text: str) -> datetime:
    """``--since``/``--until``: an ISO date or datetime, UTC unless it says otherwise."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an ISO date or datetime such as 2026-03-01 or 2026-03-01T09:30, "
            f"not {_shown(text)}."
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_SPAN = re.compile(r"([1-9][0-9]{0,4})([mhdw])")
_SPAN_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def span(text: str) -> timedelta:
    """A window back from now: a whole number with m, h, d or w (``30d``, ``12h``)."""
    match = _SPAN.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"must be a window such as 30d, 12h, 90m or 2w, not {_shown(text)}."
        )
    return timedelta(**{_SPAN_UNITS[match.group(2)]: int(match.group(1))})


def json_object(flag: str, *, when_empty: str) -> Callable[[str], dict[str, Any]]:
    """A type for a JSON object given inline, as ``@path/to/file.json``, or as ``-`` (stdin).

    The text is parsed and checked by ``agent.inputs.parse_json_object``, the function the
    services use on text, so the command line refuses exactly what the console refuses.

    Args:
        flag: the option, as messages name it.
        when_empty: what to say when the value is empty (what leaving it out would mean).
    """

    def parse(text: str) -> dict[str, Any]:
        source = _json_source(text, flag)
        if not source.strip():
            raise argparse.ArgumentTypeError(f"needs a JSON object; {when_empty}.")
        try:
            return parse_json_object(source, what=flag)
        except InvalidInput as exc:
            raise argparse.ArgumentTypeError(_after_flag(str(exc), flag)) from None

    return parse


def _json_source(text: str, flag: str) -> str:
    if text == "-":
        return _decoded(sys.stdin.buffer.read(MAX_JSON_BYTES + 1), "standard input", flag)
    if not text.startswith("@"):
        return text
    path = Path(text[1:])
    try:
        with path.open("rb") as file:
            data = file.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"names {_shown(str(path))}: no such file.") from None
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"names {_shown(str(path))}, which cannot be read ({exc.strerror or exc})."
        ) from None
    return _decoded(data, _shown(str(path)), flag)


def _decoded(data: bytes, where: str, flag: str) -> str:
    if len(data) > MAX_JSON_BYTES:
        raise argparse.ArgumentTypeError(
            f"is more than {MAX_JSON_BYTES:,} bytes in {where}; pass a smaller object."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"is not UTF-8 text in {where}.") from None


def _after_flag(message: str, flag: str) -> str:
    """``agent.inputs`` names the flag first; argparse will too, so keep it once."""
    return message.removeprefix(f"{flag} ")


def _shown(text: str) -> str:
    """The offending text for a one-line message: quoted, and cut when long."""
    return repr(text if len(text) <= 40 else text[:37] + "...")
