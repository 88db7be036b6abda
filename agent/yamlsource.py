"""YAML source with line numbers: parse safely, and find the line of any value by its path.

``yaml.safe_load`` forgets where values came from; the composed node tree remembers. A version
document is parsed twice (composed, then constructed) so every error can name its line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from agent.errors import DocumentError, VersionSpecError

PathItem = str | int
_MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_SOURCE_CHARS = 1_000_000
# Aliases let a small file expand into a huge tree ("billion laughs"); a version document has
# a few hundred nodes, so anything past this bound is refused before it is expanded.
MAX_NODES = 50_000


@dataclass(frozen=True)
class YamlSource:
    """A parsed YAML document together with the node tree that knows its lines."""

    data: Any
    root: Node | None

    def line_of(self, path: Sequence[PathItem]) -> int:
        """The 1-based line of the value at ``path``, or of its nearest existing ancestor."""
        if self.root is None:
            return 1
        node = self.root
        for item in path:
            child = _child(node, item)
            if child is None:
                break
            node = child
        return _first_line(node)

    def key_line(self, path: Sequence[PathItem], key: str) -> int:
        """The line of ``key`` itself inside the mapping at ``path`` (e.g. an unexpected key)."""
        if self.root is None:
            return 1
        node: Node | None = self.root
        for item in path:
            node = _child(node, item) if node is not None else None
        if isinstance(node, MappingNode):
            for key_node, _value in _pairs(node):
                if isinstance(key_node, ScalarNode) and key_node.value == key:
                    return int(key_node.start_mark.line) + 1
        return self.line_of(path)


def parse_yaml(text: str, *, error: type[DocumentError] = VersionSpecError) -> YamlSource:
    """Parse one YAML document safely.

    Args:
        text: the YAML.
        error: the kind of document error to raise (a version's, a suite's).

    Raises:
        DocumentError: of class ``error``: a syntax error, several documents, an unsafe tag, a
            duplicate key or a document too large; each with its line.
    """
    if len(text) > MAX_SOURCE_CHARS:
        raise error(
            f"the document has {len(text):,} characters; the limit is {MAX_SOURCE_CHARS:,}."
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, error) from None
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {exc}") from None
    if root is not None:
        _check_tree(root, error)
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, error) from None
    return YamlSource(data=data, root=root)


def _syntax_error(exc: yaml.MarkedYAMLError, error: type[DocumentError]) -> DocumentError:
    mark = exc.problem_mark or exc.context_mark
    problem = " ".join(part for part in (exc.context, exc.problem) if part)
    if mark is None:
        return error(f"not valid YAML: {problem}")
    return error(f"not valid YAML: {problem} (column {mark.column + 1})", line=mark.line + 1)


def _check_tree(root: Node, error: type[DocumentError]) -> None:
    """Refuse duplicate mapping keys (YAML silently keeps the last) and oversized expansions."""
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise error(
                f"the document expands to more than {MAX_NODES:,} values (through aliases?)."
            )
        if isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                    line = int(key_node.start_mark.line) + 1
                    if key_node.value in seen:
                        raise error(
                            f"the key {key_node.value!r} appears twice in the same mapping "
                            f"(first on line {seen[key_node.value]}); YAML would silently keep "
                            "only the last one.",
                            line=line,
                        )
                    seen[key_node.value] = line
                stack.extend((key_node, value_node))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def _pairs(node: MappingNode) -> Iterator[tuple[Node, Node]]:
    """The mapping's own pairs first, then those it merges in with ``<<``."""
    merged: list[Node] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            merged.append(value_node)
        else:
            yield key_node, value_node
    for source in merged:
        sources = source.value if isinstance(source, SequenceNode) else [source]
        for mapping in sources:
            if isinstance(mapping, MappingNode):
                yield from _pairs(mapping)


def _child(node: Node, item: PathItem) -> Node | None:
    if isinstance(node, MappingNode):
        for key_node, value_node in _pairs(node):
            if isinstance(key_node, ScalarNode) and key_node.value == str(item):
                return value_node
    elif isinstance(node, SequenceNode) and isinstance(item, int) and 0 <= item < len(node.value):
        child: Node = node.value[item]
        return child
    return None


def _first_line(node: Node) -> int:
    line = int(node.start_mark.line) + 1
    # A block scalar (``when: |``) starts on the indicator's line; its text on the next one.
    if isinstance(node, ScalarNode) and node.style in ("|", ">"):
        return line + 1
    return line
