"""Trace segments as OpenTelemetry GenAI spans.

Names and attributes follow the GenAI semantic conventions (pinned by span name and
``gen_ai.operation.name``, see the README): a run segment is ``invoke_agent {agent}``, a model
call ``chat {model}``, a policy decision ``run_guardrail {agent}.policy`` and a tool attempt
``execute_tool {tool}``. A person's review has no convention yet: it is ``steward.review
{tool}``, a child of the guardrail (or attempt) whose call it answers, so a rejected call is
visible as proposed and refused.

Spans are built as the SDK's own ``ReadableSpan`` with ids from ``SpanIds`` and the times the
rows recorded: the SDK's tracer would stamp the export's own time and random ids.

Attributes carry ids, names, verdicts, counts and hashes, never arguments, results or messages:
those leave only when message contents are opted in (``content``), and even then without the
fields the trace redacted (their placeholders do not leave either).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from agent.runtime.records import REDACTED
from agent.telemetry.ids import SpanIds
from agent.telemetry.rows import BatchRows, SegmentRows
from storage.enums import RunStatus, StepKind, StepStatus

SCOPE = InstrumentationScope("steward", "0.1.0")
REVIEW_SPAN = "steward.review"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_VERDICT = {StepStatus.OK: "allow", StepStatus.ESCALATED: "escalate", StepStatus.DENIED: "deny"}
_ACTION = {"allow": "allow", "escalate": "escalate", "deny": "block"}
_TERMINAL = {status.value for status in RunStatus if status.is_terminal}
_FAILED = {RunStatus.FAILED.value, RunStatus.ESCALATED.value, RunStatus.CANCELLED.value}


@dataclass(frozen=True)
class SpanBuilder:
    """Builds the spans of a batch of segments.

    Attributes:
        ids: how trace and span ids are derived.
        resource: the service the spans come from.
        content: whether message contents (reasoning, arguments, results, a reviewer's reason)
            leave as attributes; off unless opted in.
    """

    ids: SpanIds
    resource: Resource
    content: bool = False

    def build(self, batch: BatchRows) -> list[ReadableSpan]:
        spans: list[ReadableSpan] = []
        for rows in batch.segments:
            spans.extend(self._segment(rows, batch))
        return spans

    # -- one segment --------------------------------------------------------------------------

    def _segment(self, rows: SegmentRows, batch: BatchRows) -> Iterator[ReadableSpan]:
        segment, run = rows.segment, rows.run
        trace_id = self.ids.trace(run.run_id)
        context = self._context(trace_id, self.ids.segment(run.run_id, segment.first_seq))
        root = self._context(trace_id, self.ids.segment(run.run_id, 1))
        final = segment.status in _TERMINAL
        start = rows.start or run.created_at
        ends = [moment for moment in (rows.end, start) if moment is not None]
        if final and run.finished_at is not None:
            ends.append(run.finished_at)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": run.agent,
            "gen_ai.agent.version": str(run.version),
            "gen_ai.conversation.id": f"task-{run.task_id}",
            "steward.run.id": run.run_id,
            "steward.task.id": run.task_id,
            "steward.run.segment": segment.index,
            "steward.run.status": segment.status,
        }
        status = Status(StatusCode.UNSET)
        if final and segment.status in _FAILED:
            if run.error_class:
                attributes["error.type"] = run.error_class
            status = Status(StatusCode.ERROR, run.error_class or segment.status)
        elif final:
            status = Status(StatusCode.OK)
        links: list[Link] = []
        if segment.previous_seq:
            previous = self._context(trace_id, self.ids.segment(run.run_id, segment.previous_seq))
            links.append(Link(previous, {"steward.link": "resumed_from"}))
        yield self._span(
            f"invoke_agent {run.agent}",
            context=context,
            parent=None if segment.first_seq == 1 else root,
            attributes=attributes,
            start=start,
            end=max(ends, default=start),
            status=status,
            links=links,
        )
        results = _results(rows.steps)
        for step in rows.steps:
            kind = step["kind"]
            if kind is StepKind.PROPOSAL:
                # A model call (a failed one has no usage): a planner that calls no model
                # (playbook) has no chat to show.
                if (step["output"] or {}).get("usage") or rows.run.planner == "chat":
                    yield self._chat(step, rows, context)
            elif kind is StepKind.APPLY_GUARDRAIL:
                yield self._guardrail(step, rows, context)
            elif kind is StepKind.EXECUTE_TOOL:
                yield self._tool(step, context, results)
            elif kind is StepKind.HUMAN_APPROVAL:
                review = self._review(step, rows, context, batch)
                if review is not None:
                    yield review

    def _chat(
        self, step: Mapping[str, Any], rows: SegmentRows, parent: SpanContext
    ) -> ReadableSpan:
        output = step["output"] or {}
        usage = output.get("usage") or {}
        extra = step["attributes"] or {}
        model = str(usage.get("model") or extra.get("model") or rows.run.planner)
        failed = step["status"] is StepStatus.ERROR
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": _provider(rows.run.planner),
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": int(usage.get("prompt_tokens") or 0),
            "gen_ai.usage.output_tokens": int(usage.get("completion_tokens") or 0),
            "steward.planner": rows.run.planner,
            "steward.cost_usd": float(extra.get("cost_usd") or 0.0),
            "steward.turn": int((step["input"] or {}).get("turn") or 0),
        }
        if failed:
            attributes["error.type"] = _error_class(step)
        if self.content:
            message: dict[str, Any] = {"role": "assistant", "parts": []}
            if output.get("reasoning"):
                message["parts"].append({"type": "text", "content": output["reasoning"]})
            for call in output.get("calls") or []:
                message["parts"].append(
                    {
                        "type": "tool_call",
                        "id": call.get("call_id"),
                        "name": call.get("tool"),
                        "arguments": _visible(call.get("args")),
                    }
                )
            if output.get("final_answer") is not None:
                message["parts"].append(
                    {"type": "text", "content": _json(_visible(output["final_answer"]))}
                )
            attributes["gen_ai.output.messages"] = _json([message])
        return self._span(
            f"chat {model}",
            context=self._context(parent.trace_id, self.ids.step(step["id"])),
            parent=parent,
            attributes=attributes,
            start=step["started_at"],
            end=step["ended_at"],
            status=Status(StatusCode.ERROR, _error_class(step))
            if failed
            else Status(StatusCode.UNSET),
            kind=SpanKind.CLIENT,
        )

    def _guardrail(
        self, step: Mapping[str, Any], rows: SegmentRows, parent: SpanContext
    ) -> ReadableSpan:
        output = step["output"] or {}
        policy = output.get("policy") or {}
        verdict = _VERDICT.get(step["status"], "deny")
        component = f"{rows.run.agent}.policy"
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "run_guardrail",
            "gen_ai.guardrail.component.name": component,
            "gen_ai.guardrail.verdict.type": verdict,
            "gen_ai.guardrail.action.type": _ACTION[verdict],
            "gen_ai.guardrail.target.type": "tool_call",
            "gen_ai.guardrail.target.id": step["call_id"] or "",
            "gen_ai.guardrail.security.policy.id": str(
                policy.get("policy_hash") or rows.run.policy_hash
            ),
            "gen_ai.tool.name": step["name"],
            "gen_ai.tool.call.id": step["call_id"] or "",
            "steward.guardrail.stage": str(output.get("stage") or ""),
            "steward.guardrail.authorized": bool((step["attributes"] or {}).get("authorized")),
        }
        if output.get("rule_id"):
            attributes["gen_ai.guardrail.security.policy.rule.id"] = str(output["rule_id"])
        if output.get("reason"):
            attributes["gen_ai.guardrail.verdict.reason"] = str(output["reason"])
        matched = [m.get("rule_id") for m in policy.get("matched") or [] if m.get("rule_id")]
        if matched:
            attributes["steward.guardrail.matched_rules"] = [str(m) for m in matched]
        if step["error_class"] is not None:
            attributes["steward.error_class"] = step["error_class"].value
        return self._span(
            f"run_guardrail {component}",
            context=self._context(parent.trace_id, self.ids.step(step["id"])),
            parent=parent,
            attributes=attributes,
            start=step["started_at"],
            end=step["ended_at"],
            status=Status(StatusCode.UNSET),
        )

    def _tool(
        self,
        step: Mapping[str, Any],
        parent: SpanContext,
        results: Mapping[str, Mapping[str, Any]],
    ) -> ReadableSpan:
        extra = step["attributes"] or {}
        failed = step["status"] is StepStatus.ERROR
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": step["name"],
            "gen_ai.tool.call.id": step["call_id"] or "",
            "gen_ai.tool.type": "function",
            "steward.tool.attempt": int(extra.get("attempt") or 1),
        }
        if extra.get("health"):
            attributes["steward.tool.health"] = str(extra["health"])
        if failed:
            attributes["error.type"] = _error_class(step)
        if self.content:
            attributes["gen_ai.tool.call.arguments"] = _json(
                _visible((step["input"] or {}).get("args"))
            )
            result = results.get(step["call_id"] or "")
            if result is not None and not failed:
                attributes["gen_ai.tool.call.result"] = _json(_visible(result))
            error = (step["output"] or {}).get("error")
            if failed and error:
                attributes["steward.tool.error"] = str(error)
        return self._span(
            f"execute_tool {step['name']}",
            context=self._context(parent.trace_id, self.ids.step(step["id"])),
            parent=parent,
            attributes=attributes,
            start=step["started_at"],
            end=step["ended_at"],
            status=Status(StatusCode.ERROR, _error_class(step))
            if failed
            else Status(StatusCode.UNSET),
        )

    def _review(
        self,
        step: Mapping[str, Any],
        rows: SegmentRows,
        segment: SpanContext,
        batch: BatchRows,
    ) -> ReadableSpan | None:
        review_id = (step["attributes"] or {}).get("review_id")
        review = batch.reviews.get(review_id) if isinstance(review_id, int) else None
        if review is None:
            return None
        decision = batch.decisions.get(review["id"])
        parent = segment
        answered = [
            s
            for s in batch.reviewed.get((rows.run.run_id, review["call_id"] or ""), [])
            if s["seq"] < step["seq"]
        ]
        if answered:
            parent = self._context(segment.trace_id, self.ids.step(answered[-1]["id"]))
        status = review["status"]
        decided_at: datetime = review["decided_at"] or step["ended_at"]
        waited_s = max((decided_at - review["created_at"]).total_seconds(), 0.0)
        tool = review["tool"] or review["kind"].value
        attributes: dict[str, Any] = {
            "steward.operation.name": "review",
            "steward.review.id": review["id"],
            "steward.review.kind": review["kind"].value,
            "steward.review.decision": status.value,
            "steward.review.reviewer": review["decided_by"] or "system",
            "steward.review.edited": decision is not None
            and decision["args_hash"] is not None
            and decision["args_hash"] != review["args_hash"],
            "steward.review.waiting_s": waited_s,
            "steward.review.expired": status.value == "expired",
            "steward.review.tier": int(review["tier"]),
            "steward.review.policy_hash": review["policy_hash"],
        }
        if review["args_hash"]:
            attributes["steward.review.args_hash"] = review["args_hash"]
        if decision is not None and decision["args_hash"]:
            attributes["steward.review.decided_args_hash"] = decision["args_hash"]
        if review["rule_id"]:
            attributes["steward.review.rule_id"] = review["rule_id"]
        if review["sla_due_at"] is not None:
            attributes["steward.review.sla_due_at"] = review["sla_due_at"].isoformat()
        # Steward's own names: a backend reading ``gen_ai.tool.*`` would show a tool call.
        if review["call_id"]:
            attributes["steward.review.call_id"] = review["call_id"]
        if review["tool"]:
            attributes["steward.review.tool"] = review["tool"]
        if self.content and decision is not None and decision["reason"]:
            attributes["steward.review.reason"] = decision["reason"]
        refused = not status.authorizes
        return self._span(
            f"{REVIEW_SPAN} {tool}",
            context=self._context(segment.trace_id, self.ids.review(review["id"])),
            parent=parent,
            attributes=attributes,
            start=review["created_at"],
            end=decided_at,
            status=Status(StatusCode.ERROR, status.value) if refused else Status(StatusCode.OK),
        )

    # -- plumbing -----------------------------------------------------------------------------

    @staticmethod
    def _context(trace_id: int, span_id: int) -> SpanContext:
        return SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED)

    def _span(
        self,
        name: str,
        *,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        start: datetime,
        end: datetime | None,
        status: Status,
        links: Sequence[Link] = (),
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> ReadableSpan:
        started = _nanos(start)
        return ReadableSpan(
            name=name,
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=attributes,
            links=links,
            kind=kind,
            status=status,
            start_time=started,
            end_time=max(_nanos(end) if end is not None else started, started),
            instrumentation_scope=SCOPE,
        )


def _results(steps: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """What each call returned, from the segment's observations (for opted-in contents)."""
    found: dict[str, Mapping[str, Any]] = {}
    for step in steps:
        if step["kind"] is StepKind.OBSERVATION and step["call_id"]:
            found[step["call_id"]] = (step["output"] or {}).get("content") or {}
    return found


def _error_class(step: Mapping[str, Any]) -> str:
    return step["error_class"].value if step["error_class"] is not None else "error"


def _provider(planner: str) -> str:
    # A chat planner talks to an OpenAI-compatible endpoint; the others are Steward's own.
    return "openai" if planner == "chat" else f"steward.{planner or 'planner'}"


def _visible(value: Any) -> Any:
    """``value`` without the fields the trace redacted: neither secrets nor their placeholders
    leave."""
    if isinstance(value, Mapping):
        return {k: _visible(v) for k, v in value.items() if v != REDACTED}
    if isinstance(value, list):
        return [_visible(v) for v in value if v != REDACTED]
    return value


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _nanos(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000
