"""What a version pins of an MCP server's tools, and how a listing is checked against the pins.

A pin is a tool's name and the hash of its input schema, taken when an engineer inspected the
server (``steward mcp inspect``), with the governance Steward applies to it. The governance
defaults come from the tool's MCP annotations, which are hints a server gives about itself:
``readOnlyHint`` makes a read, ``destructiveHint: false`` an additive write, ``idempotentHint``
an idempotent one, and a tool that declares nothing is treated as irreversible (the MCP
specification's own defaults: not read-only, destructive, not idempotent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.binding import canonical_json
from agent.spec import McpToolPin
from storage.enums import SideEffect


def schema_hash(name: str, input_schema: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of a tool's name and input schema."""
    document = {"name": name, "inputSchema": dict(input_schema)}
    return "sha256:" + hashlib.sha256(canonical_json(document).encode()).hexdigest()


@dataclass(frozen=True)
class ListedTool:
    """One tool as a server lists it, reduced to what Steward reads of it.

    Attributes:
        read_only, destructive, idempotent: the MCP annotation hints, None when not given.
    """

    name: str
    description: str
    input_schema: Mapping[str, Any]
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None

    @property
    def schema_hash(self) -> str:
        return schema_hash(self.name, self.input_schema)

    @property
    def side_effect(self) -> SideEffect:
        """The side-effect class its annotations suggest (irreversible when they say nothing)."""
        if self.read_only:
            return SideEffect.READ
        if self.destructive is False:
            return SideEffect.WRITE
        return SideEffect.IRREVERSIBLE

    @property
    def is_idempotent(self) -> bool:
        return bool(self.read_only or self.idempotent)

    def pin(self) -> dict[str, Any]:
        """The entry of a version's ``mcp_servers[].tools`` list that pins this tool."""
        entry: dict[str, Any] = {"name": self.name}
        if self.description:
            entry["description"] = self.description
        entry.update(
            {
                "args_schema": dict(self.input_schema),
                "schema_hash": self.schema_hash,
                "side_effect": self.side_effect.value,
                "idempotent": self.is_idempotent,
                "data_sources": [],
            }
        )
        return entry


@dataclass(frozen=True)
class PinCheck:
    """A server's listing compared with a version's pins.

    Attributes:
        changed: pinned tools the server lists with another input schema, by name on the server.
        missing: pinned tools the server no longer lists.
    """

    changed: frozenset[str]
    missing: frozenset[str]

    def problem(self, pin: McpToolPin) -> str | None:
        """Why ``pin`` cannot be called on this server, or None when it matches."""
        if pin.remote_name in self.missing:
            return "the server no longer lists it"
        if pin.remote_name in self.changed:
            return "its input schema on the server differs from the one the version pinned"
        return None


def check_pins(pins: Sequence[McpToolPin], listed: Sequence[ListedTool]) -> PinCheck:
    """Compare pinned tools with what a server lists; tools it lists beyond the pins are
    ignored (they are never offered to a run)."""
    by_name = {tool.name: tool for tool in listed}
    changed = set()
    missing = set()
    for pin in pins:
        tool = by_name.get(pin.remote_name)
        if tool is None:
            missing.add(pin.remote_name)
        elif tool.schema_hash != pin.schema_hash:
            changed.add(pin.remote_name)
    return PinCheck(frozenset(changed), frozenset(missing))
