"""Schema patterns mean what JSON Schema means (ECMA-262, not Python's ``re``), and no string
argument of a tool call may carry a control character or a lone surrogate."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.errors import InvalidInput
from agent.tools.base import ToolSpec
from agent.tools.validation import compiled_validator, validate, validate_args
from storage.engine import read_session
from storage.enums import ErrorClass, RunStatus, StepKind
from storage.models import Step, ToolCall
from tests.support.runtime import Effects, drive, install_agent, scripted_version, shop_registry
from tests.support.runtime import submit as submit_task

CUSTOMER_ID = {"type": "string", "pattern": "^C-[0-9]{4}$"}


def _problems(schema: dict[str, Any], instance: Any) -> list[str]:
    return validate(schema, instance, root="x")


# --- pattern ----------------------------------------------------------------------------------


def test_dollar_does_not_match_before_a_final_newline() -> None:
    # Under Python's re, "$" also matches before a final "\n": this key passed as "C-1002".
    assert _problems(CUSTOMER_ID, "C-1002") == []
    assert _problems(CUSTOMER_ID, "C-1002\n") == [r"x: 'C-1002\n' does not match '^C-[0-9]{4}$'"]


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        pytest.param(r"^\d+$", "١٢٣", id="digit-is-ascii-only"),  # Arabic-Indic digits
        pytest.param(r"^\w+$", "café", id="word-is-ascii-only"),
        pytest.param(r"^\s*$", "\x1c", id="space-excludes-file-separator"),
    ],
)
def test_character_classes_are_ecma_not_python(pattern: str, text: str) -> None:
    assert _problems({"pattern": pattern}, text) == [f"x: {text!r} does not match {pattern!r}"]


def test_unicode_property_escapes_work() -> None:
    letters = {"pattern": r"^\p{L}+$"}
    assert _problems(letters, "olé") == []
    assert _problems(letters, "olé1") != []


def test_a_pattern_only_ecma_accepts_compiles() -> None:
    # "[^]" (any character) is ECMA-262; Python's re refuses it as an unterminated set.
    assert _problems({"pattern": "^[^]{2}$"}, "a\n") == []
    assert _problems({"pattern": "^[^]{2}$"}, "abc") != []


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param(r"^C-\d+\Z", id="python-end-anchor"),
        pytest.param(r"(?P<id>C-\d+)", id="python-named-group"),
        pytest.param(r"(?i)^c-\d+$", id="python-inline-flag"),
        pytest.param(r"^C-(\d+$", id="unbalanced"),
    ],
)
def test_a_pattern_ecma_cannot_compile_is_a_schema_error(pattern: str) -> None:
    spec = ToolSpec(
        "find_customer", "", {"type": "object", "properties": {"id": {"pattern": pattern}}}
    )
    with pytest.raises(InvalidInput) as caught:
        validate_args(spec, {"id": "C-1"})
    message = str(caught.value)
    assert message.startswith("tool 'find_customer' arguments: the JSON schema is invalid: ")
    assert f"properties.id.pattern: {pattern!r} is not an ECMA-262 regular expression" in message
    assert "\n" not in message


def test_the_regex_format_is_checked_with_ecma() -> None:
    regex = {"type": "string", "format": "regex"}
    assert _problems(regex, "^[^]$") == []
    assert _problems(regex, r"(?P<n>a)") == [r"x: '(?P<n>a)' is not a 'regex'"]


# --- patternProperties and the keywords that depend on it --------------------------------------

HEADERS = {
    "type": "object",
    "patternProperties": {"^x-[a-z]+$": {"type": "integer"}},
    "additionalProperties": False,
}


def test_pattern_properties_and_additional_properties_use_ecma() -> None:
    assert _problems(HEADERS, {"x-trace": 1}) == []
    assert _problems(HEADERS, {"x-trace": "one"}) == ["x.x-trace: 'one' is not of type 'integer'"]
    # Under re the key below matched "^x-[a-z]+$", so it was neither refused as additional nor
    # checked as an integer.
    assert _problems(HEADERS, {"x-trace\n": "one"}) == [
        r"x: 'x-trace\n' does not match any of the regexes: '^x-[a-z]+$'"
    ]
    open_extras = {**HEADERS, "additionalProperties": {"type": "string"}}
    assert _problems(open_extras, {"x-trace\n": 1}) == [r"x.x-trace\n: 1 is not of type 'string'"]


def test_an_invalid_pattern_property_name_is_a_schema_error() -> None:
    with pytest.raises(InvalidInput, match=r"'\(\?P<n>x\)' is not an ECMA-262 regular expression"):
        validate({"patternProperties": {"(?P<n>x)": {}}}, {}, what="the edit")


def test_unevaluated_properties_next_to_pattern_properties_is_refused() -> None:
    schema = {"patternProperties": {"^x-": {}}, "unevaluatedProperties": False}
    with pytest.raises(InvalidInput, match="use additionalProperties"):
        validate(schema, {}, what="the edit")


def test_validators_are_still_shared_per_schema() -> None:
    assert compiled_validator(dict(CUSTOMER_ID)) is compiled_validator(CUSTOMER_ID)


# --- control characters in arguments ----------------------------------------------------------

NOTE = ToolSpec(
    "add_note",
    "",
    {
        "type": "object",
        "properties": {
            "customer_id": CUSTOMER_ID,
            "text": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object"},
        },
    },
)


def test_free_text_may_hold_tabs_and_line_breaks() -> None:
    assert validate_args(NOTE, {"customer_id": "C-1002", "text": "a\tb\r\nc\n", "tags": []}) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            {"text": "abc\x00"}, "args.text: contains a control character (U+0000)", id="nul"
        ),
        pytest.param(
            {"text": "bell\x07"}, "args.text: contains a control character (U+0007)", id="c0"
        ),
        pytest.param(
            {"text": "del\x7f"}, "args.text: contains a control character (U+007F)", id="del"
        ),
        pytest.param(
            {"text": "next line\x85"},
            "args.text: contains a control character (U+0085)",
            id="c1",
        ),
        pytest.param(
            {"tags": ["ok", "esc\x1b[2J"]},
            "args.tags[1]: contains a control character (U+001B)",
            id="nested",
        ),
        pytest.param(
            {"meta": {"a\x00b": 1}},
            "args.meta: a key contains a control character (U+0000)",
            id="key",
        ),
        pytest.param(
            {"text": "half \ud83d pair"},
            "args.text: contains a lone surrogate (U+D83D), which is not text",
            id="surrogate",
        ),
    ],
)
def test_control_characters_and_lone_surrogates_are_refused(
    args: dict[str, Any], expected: str
) -> None:
    assert expected in validate_args(NOTE, args)


def test_an_identifier_gets_both_the_pattern_and_the_control_character_error() -> None:
    assert validate_args(NOTE, {"customer_id": "C-1002\x00"}) == [
        "args.customer_id: 'C-1002\\x00' does not match '^C-[0-9]{4}$'",
        "args.customer_id: contains a control character (U+0000)",
    ]


def test_a_lone_surrogate_fails_a_pattern_instead_of_crashing_the_engine() -> None:
    assert validate_args(NOTE, {"customer_id": "C-100\udc00"}) == [
        "args.customer_id: 'C-100\\udc00' does not match '^C-[0-9]{4}$'",
        "args.customer_id: contains a lone surrogate (U+DC00), which is not text",
    ]


def test_a_control_character_never_reaches_the_tool(engine: Engine) -> None:
    effects = Effects()
    registry = shop_registry(effects)
    script = [
        {"reasoning": "escape", "calls": [{"tool": "lookup", "args": {"order_id": "O1\x1b"}}]},
        {"reasoning": "done", "final": {"resolution": "answered"}},
    ]
    install_agent(engine, "shop", scripted_version(script))
    submit_task(engine, "shop", {"order_id": "O1"})
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    with read_session(engine) as session:
        observation = session.exec(
            select(Step).where(col(Step.kind) == StepKind.OBSERVATION, Step.call_id == "t0c0")
        ).one()
        executed = session.exec(select(ToolCall)).all()
    assert observation.error_class is ErrorClass.INVALID_ARGUMENTS
    assert "args.order_id: contains a control character (U+001B)" in str(observation.output)
    assert executed == []
