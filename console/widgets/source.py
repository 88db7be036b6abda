"""Pointing at a line of text someone typed, such as the YAML line a version error names."""

from __future__ import annotations

import streamlit as st


def excerpt(text: str, line: int, context: int = 2) -> str:
    """The lines around ``line`` (1-based), numbered, with the named one marked ``>``.

    A line past the end (YAML reports an unclosed bracket where the text ends) marks the last.
    """
    lines = text.splitlines()
    if not lines or line < 1:
        return ""
    line = min(line, len(lines))
    first, last = max(1, line - context), min(len(lines), line + context)
    width = len(str(last))
    return "\n".join(
        f"{'>' if number == line else ' '} {number:>{width}} | {lines[number - 1]}"
        for number in range(first, last + 1)
    )


def show_line(text: str, line: int | None) -> None:
    """Show the excerpt around ``line`` as code, when the line is known and exists."""
    if line is None:
        return
    shown = excerpt(text, line)
    if shown:
        st.code(shown, language=None)
