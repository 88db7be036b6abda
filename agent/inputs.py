"""What people send in as JSON (task inputs, edited arguments): parsed and checked in one place.

The CLI's ``--input``/``--args``, the console's task form and ``submit_task`` given a dict all
pass through here, so every way in refuses the same things, each with a sentence naming where:

- more than ``MAX_JSON_BYTES`` of JSON, or containers nested deeper than ``MAX_JSON_DEPTH``;
- numbers that are not finite (``NaN``, ``Infinity``, ``1e999``) and integers beyond 64 bits;
- NUL characters and lone UTF-16 surrogates in any key or string (PostgreSQL cannot store
  them, and a run that carries one fails on every claim);
- anything but a JSON object at the top.

Ids get one range too: the database's INTEGER, so an id from a link or a command line that
could never exist is "not found", not a database error.
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from agent.errors import InvalidInput

MAX_JSON_BYTES = 1_000_000
MAX_JSON_DEPTH = 32
MAX_ID = 2_147_483_647  # the largest value of a SQL INTEGER column (PostgreSQL's int4)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# 19 digits hold every 64-bit integer; longer ones are refused before ``int()`` parses them,
# which also keeps clear of Python's limit on converting very long digit strings.
_MAX_INT_DIGITS = 20

# A JSON string literal (escapes included), and runs of anything that is not a bracket. The
# quantifiers are possessive, so a megabyte of text is scanned in linear time.
_STRING_LITERAL = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_record_id(value: int) -> bool:
    """Whether ``value`` can be the id of a stored row (1 to ``MAX_ID``)."""
    return 1 <= value <= MAX_ID


def whole_number(text: str) -> int | None:
    """The number written in ``text`` (a link's ``?run=12``): ASCII digits only, at most 20 of
    them, else None. Whether a row can have it is ``is_record_id``'s question."""
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_INT_DIGITS:
        return None
    return int(digits)


def parse_json_object(text: str, *, what: str = "the input") -> dict[str, Any]:
    """Parse ``text`` as one JSON object and check its content.

    Args:
        text: the JSON text.
        what: how the message names the input ("the task input", "--args").

    Raises:
        InvalidInput: too large, too deep, not JSON, not an object, or content ``check_json``
            refuses; the message names the place.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_JSON_BYTES:
        raise InvalidInput(
            f"{what} is {size:,} bytes of JSON; the limit is {MAX_JSON_BYTES:,} "
            "(pass a smaller object)."
        )
    # Python's JSON decoder recurses once per nesting level and has no depth option, so a
    # deeply nested document would raise RecursionError: measure the depth on the raw text
    # first, with the string literals (where brackets mean nothing) taken out.
    if _text_depth(text) > MAX_JSON_DEPTH:
        raise InvalidInput(_too_deep(what))
    try:
        value = json.loads(text, parse_int=_int_or_marker)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object ({{...}}), not {_kind(value)}.")
    check_json(value, what=what)
    return value


def json_object(value: Mapping[str, Any] | str, *, what: str = "the input") -> dict[str, Any]:
    """A JSON object from text (parsed) or a mapping (copied), checked either way.

    Raises:
        InvalidInput: as ``parse_json_object`` and ``check_json`` say.
    """
    if isinstance(value, str):
        return parse_json_object(value, what=what)
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} must be a JSON object ({{...}}), not {_kind(value)}.")
    obj = dict(value)
    check_json(obj, what=what)
    return obj


def check_json(value: Any, *, what: str = "the input") -> None:
    """Refuse a value that JSON cannot carry faithfully or the database cannot store.

    Walks the value without recursion (depth is what is being limited), breadth first, so the
    shallowest problem is the one named.

    Raises:
        InvalidInput: nested deeper than ``MAX_JSON_DEPTH``, a non-finite number, an integer
            beyond 64 bits, a NUL or lone surrogate in a key or string, a key that is not
            text, a value of a type JSON does not have, or more than ``MAX_JSON_BYTES``.
    """
    pending: deque[tuple[Any, str, int]] = deque([(value, "$", 0)])
    while pending:
        node, path, depth = pending.popleft()
        if isinstance(node, Mapping | list | tuple):
            if depth + 1 > MAX_JSON_DEPTH:
                raise InvalidInput(_too_deep(what))
            if isinstance(node, Mapping):
                for key, child in node.items():
                    if not isinstance(key, str):
                        raise InvalidInput(f"{what} has a key that is not text in {_at(path)}.")
                    _check_text(key, f"a key of {path}", what)
                    pending.append((child, _child(path, key), depth + 1))
            else:
                pending.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(node))
        elif isinstance(node, str):
            _check_text(node, path, what)
        elif isinstance(node, _BigInteger) or (
            isinstance(node, int)
            and not isinstance(node, bool)
            and not INT64_MIN <= node <= INT64_MAX
        ):
            raise InvalidInput(
                f"{what} has an integer beyond 64 bits at {_at(path)}; send it as a string."
            )
        elif isinstance(node, float) and not math.isfinite(node):
            raise InvalidInput(
                f"{what} has a number that is not finite (NaN or Infinity) at {_at(path)}; "
                "JSON numbers must be finite."
            )
        elif not (node is None or isinstance(node, bool | int | float)):
            raise InvalidInput(
                f"{what} holds a value JSON cannot carry ({type(node).__name__}) at {_at(path)}."
            )
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > MAX_JSON_BYTES:
        raise InvalidInput(
            f"{what} is {size:,} bytes as JSON; the limit is {MAX_JSON_BYTES:,} "
            "(pass a smaller object)."
        )


def _text_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, string literals left out."""
    brackets = _NOT_BRACKET.sub("", _STRING_LITERAL.sub("", text))
    depth = deepest = 0
    for bracket in brackets:
        if bracket in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    break
        else:
            depth -= 1
    return deepest


class _BigInteger:
    """An integer literal too long for 64 bits, kept aside so the check can name its path."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _int_or_marker(literal: str) -> int | _BigInteger:
    if len(literal.lstrip("-")) > _MAX_INT_DIGITS:
        return _BigInteger(literal)
    return int(literal)


def _check_text(text: str, path: str, what: str) -> None:
    found = _BAD_CHARACTER.search(text)
    if found is None:
        return
    if found.group() == "\x00":
        raise InvalidInput(f"{what} has a NUL character in {_at(path)}; remove it.")
    raise InvalidInput(
        f"{what} has a lone UTF-16 surrogate in {_at(path)} (text that is not valid Unicode); "
        "send valid UTF-8 text."
    )


def _at(path: str) -> str:
    """A path short enough for a one-line message."""
    return path if len(path) <= 80 else path[:77] + "..."


def _child(path: str, key: str) -> str:
    if _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _too_deep(what: str) -> str:
    return f"{what} is nested deeper than {MAX_JSON_DEPTH} levels; flatten it."


def _kind(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"
