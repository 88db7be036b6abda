"""How proposals, observations and steps are written to the trace and read back from it.

The trace is the run's event log: ``rebuild_history`` turns its proposal and observation steps
back into the planner's history, which is how a run resumes on another worker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from agent.calls import Observation, ProposedCall
from agent.planning.base import Proposal, TokenUsage, Turn
from storage.enums import ErrorClass, StepKind
from storage.models import Step

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|authorization|credential", re.IGNORECASE
)
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """A copy of ``value`` with every field whose name looks like a secret replaced, and every
    string made storable (see ``storable_text``).

    Everything written to the trace, the ledger or a review passes through here, so a tool
    that returns a temporary password or an API key never leaves it in the database, and text a
    planner or a tool produced cannot make a write fail.
    """
    if isinstance(value, Mapping):
        return {
            storable_text(str(k)): (
                REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return storable_text(value)
    return value


# A surrogate code point in a Python string (JSON decoding joins proper pairs into one code
# point, so any left is a lone half): it cannot be encoded as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def storable(value: Any) -> Any:
    """A copy of a JSON document with every string (keys too) made storable; nothing else is
    changed (``redact`` does this and also hides secrets)."""
    if isinstance(value, Mapping):
        return {storable_text(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    if isinstance(value, str):
        return storable_text(value)
    return value


def storable_text(text: str, limit: int | None = None) -> str:
    """``text`` with what no database column can hold replaced by U+FFFD (NUL, which PostgreSQL
    refuses in text and JSON, and lone surrogates, which cannot be encoded), cut to ``limit``.

    Planners and tools produce text Steward does not control; storing it must never fail, or
    the run would fail on every claim."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if not text.isascii():
        text = _SURROGATE.sub(REPLACEMENT, text)
    return text if limit is None else text[:limit]


def proposal_to_json(proposal: Proposal) -> dict[str, Any]:
    document: dict[str, Any] = redact(
        {
            "reasoning": proposal.reasoning,
            "calls": [
                {"call_id": c.call_id, "tool": c.tool, "args": _jsonable(c.args)}
                for c in proposal.calls
            ],
            "final_answer": dict(proposal.final_answer)
            if proposal.final_answer is not None
            else None,
            "error": proposal.error,
        }
    )
    # Added after redaction: token counts are not secrets, though their names look like it.
    document["usage"] = (
        {
            "model": proposal.usage.model,
            "prompt_tokens": proposal.usage.prompt_tokens,
            "completion_tokens": proposal.usage.completion_tokens,
        }
        if proposal.usage
        else None
    )
    return document


def _jsonable(args: Any) -> Any:
    return dict(args) if isinstance(args, Mapping) else args


def proposal_from_json(doc: Mapping[str, Any]) -> Proposal:
    usage = doc.get("usage")
    return Proposal(
        reasoning=doc.get("reasoning", ""),
        calls=tuple(ProposedCall(c["call_id"], c["tool"], c["args"]) for c in doc.get("calls", [])),
        final_answer=doc.get("final_answer"),
        error=doc.get("error"),
        usage=TokenUsage(**usage) if usage else None,
    )


def observation_to_json(obs: Observation) -> dict[str, Any]:
    return {
        "call_id": obs.call_id,
        "tool": obs.tool,
        "status": obs.status,
        "content": redact(dict(obs.content)),
        "error_class": obs.error_class.value if obs.error_class else None,
    }


def observation_from_json(doc: Mapping[str, Any]) -> Observation:
    error_class = doc.get("error_class")
    return Observation(
        call_id=doc["call_id"],
        tool=doc["tool"],
        status=doc["status"],
        content=doc.get("content") or {},
        error_class=ErrorClass(error_class) if error_class else None,
    )


def rebuild_history(steps: Sequence[Step]) -> list[Turn]:
    """Turns from proposal and observation steps, in trace order."""
    turns: list[tuple[Proposal, list[Observation]]] = []
    turn_of_call: dict[str, int] = {}
    for step in steps:
        if step.kind is StepKind.PROPOSAL and step.output is not None:
            proposal = proposal_from_json(step.output)
            for call in proposal.calls:
                turn_of_call[call.call_id] = len(turns)
            turns.append((proposal, []))
        elif step.kind is StepKind.OBSERVATION and step.output is not None and turns:
            observation = observation_from_json(step.output)
            turns[turn_of_call.get(observation.call_id, len(turns) - 1)][1].append(observation)
    return [Turn(p, tuple(obs)) for p, obs in turns]
