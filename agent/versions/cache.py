"""The runtime's cached ``VersionSpec`` per stored version (versions are immutable)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from agent.binding import content_hash as hash_document
from agent.spec import VersionSpec


class _SpecKey:
    """Hashes and compares by (version id, content hash); carries the document along.

    The content hash is part of the key because one process can see several databases (the
    test suite does), where the same version id names different documents.
    """

    __slots__ = ("content_hash", "document", "version_id")

    def __init__(self, version_id: int, content_hash: str, document: Mapping[str, Any]) -> None:
        self.version_id = version_id
        self.content_hash = content_hash
        self.document = document

    def __hash__(self) -> int:
        return hash((self.version_id, self.content_hash))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _SpecKey)
            and other.version_id == self.version_id
            and other.content_hash == self.content_hash
        )


@functools.lru_cache(maxsize=256)
def _build(key: _SpecKey) -> VersionSpec:
    return VersionSpec.from_document(key.document)


def load_spec(
    version_id: int, spec: Mapping[str, Any], *, content_hash: str | None = None
) -> VersionSpec:
    """The ``VersionSpec`` of a stored version, built once per version and process.

    Args:
        version_id: the ``AgentVersion`` id.
        spec: its stored, already validated document (``AgentVersion.spec``).
        content_hash: its stored content hash; computed from ``spec`` when not given.
    """
    digest = content_hash if content_hash is not None else hash_document(spec)
    return _build(_SpecKey(version_id, digest, spec))


def clear_spec_cache() -> None:
    """Forget every cached spec (tests that rebuild databases may call it)."""
    _build.cache_clear()
