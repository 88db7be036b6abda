"""Trace and span ids derived from Steward's own ids, so a span sent twice is the same span.

OpenTelemetry ids are random by default; an export that may repeat after an outage needs ids
that a repeat reproduces. Each id is a slice of a SHA-256 over the installation's key and the
row it stands for: one trace per run, one span per step, segment and review.
"""

from __future__ import annotations

import hashlib


class SpanIds:
    """The ids of one installation's traces (``installation``: its random key)."""

    def __init__(self, installation: str) -> None:
        self.installation = installation

    def _digest(self, *parts: object) -> bytes:
        text = ":".join([self.installation, *(str(p) for p in parts)])
        return hashlib.sha256(text.encode()).digest()

    def trace(self, run_id: int) -> int:
        """The 128-bit trace id of a run (never zero, which OpenTelemetry reserves)."""
        return int.from_bytes(self._digest("run", run_id)[:16], "big") or 1

    def segment(self, run_id: int, first_seq: int) -> int:
        """The span id of the ``invoke_agent`` span of a run's segment starting at ``first_seq``."""
        return int.from_bytes(self._digest("segment", run_id, first_seq)[:8], "big") or 1

    def step(self, step_id: int) -> int:
        """The span id of a trace step."""
        return int.from_bytes(self._digest("step", step_id)[:8], "big") or 1

    def review(self, review_id: int) -> int:
        """The span id of a person's review."""
        return int.from_bytes(self._digest("review", review_id)[:8], "big") or 1


def hex_trace_id(trace_id: int) -> str:
    """A trace id as backends and W3C ``traceparent`` print it (32 hex digits)."""
    return f"{trace_id:032x}"
