"""How a run's trace reads: a step-by-step timeline, a latency chart, tool attempts, human
decisions, the final output with its validation, and the pinned version's policy.

The review pane shows the same timeline for the part of a run before it asked for a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from agent.reads.runs import RunTrace, RunUsage, TraceStep
from console.components.formatting import compact, duration, option_label, when
from console.components.waterfall import render_conversation, render_waterfall
from storage.enums import StepKind

# The root span covers the whole run and a human approval step measures a person's wait:
# neither is agent latency, so the chart leaves them out (as the KPIs do).
NOT_LATENCY = (StepKind.INVOKE_AGENT, StepKind.HUMAN_APPROVAL)
LATENCY_BAR_PX = 24
LATENCY_AXES_PX = 80


def step_summary(step: TraceStep) -> str:
    """One line saying what happened in ``step``."""
    out: dict[str, Any] = step.output or {}
    kind = step.kind
    if kind is StepKind.PROPOSAL:
        calls = ", ".join(str(c.get("tool")) for c in out.get("calls") or [])
        tail = f" → {calls}" if calls else (" → final answer" if out.get("final_answer") else "")
        return f"{out.get('reasoning') or ''}{tail}".strip()
    if kind is StepKind.APPLY_GUARDRAIL:
        return f"{out.get('effect', '?')} at {out.get('stage', '?')}: {out.get('reason') or ''}"
    if kind is StepKind.EXECUTE_TOOL:
        attempt = step.attributes.get("attempt", 1)
        error = out.get("error")
        return f"attempt {attempt}: {error}" if error else f"attempt {attempt}: ok"
    if kind is StepKind.OBSERVATION:
        return f"{out.get('status', '')}: {compact(out.get('content'), 100)}"
    if kind is StepKind.HUMAN_APPROVAL:
        reason = out.get("reason") or "no reason given"
        return f"{out.get('decision')} by {out.get('decided_by') or 'the system'}: {reason}"
    if kind is StepKind.FINAL_OUTPUT:
        problems = out.get("problems") or []
        return "meets the output contract" if not problems else "; ".join(map(str, problems))
    if kind is StepKind.INVOKE_AGENT:
        return f"run {out.get('status') or step.status.value}"
    return compact(out, 100) if out else ""


def timeline_frame(steps: Sequence[TraceStep]) -> pd.DataFrame:
    """The steps as table rows, with time since the first step."""
    start = steps[0].started_at if steps else None
    return pd.DataFrame(
        [
            {
                "seq": s.seq,
                "at": f"+{(s.started_at - start).total_seconds() * 1000:.0f} ms" if start else "",
                "kind": s.kind.value,
                "name": s.name,
                "status": s.status.value,
                "error class": s.error_class.value if s.error_class else "",
                "rule": s.attributes.get("rule_id") or "",
                "duration ms": round(s.duration_ms, 2) if s.duration_ms is not None else None,
                "what happened": step_summary(s),
            }
            for s in steps
        ],
        columns=[
            "seq",
            "at",
            "kind",
            "name",
            "status",
            "error class",
            "rule",
            "duration ms",
            "what happened",
        ],
    )


def render_timeline(steps: Sequence[TraceStep], *, key: str) -> None:
    """The step-by-step timeline as a table."""
    if not steps:
        st.info("No steps were recorded.")
        return
    # Tall enough for every row up to about thirty (a row is 35 px), so the step that asked
    # for a person is on screen without an inner scroll.
    st.dataframe(
        timeline_frame(steps),
        hide_index=True,
        key=key,
        height=min(35 * (len(steps) + 1) + 3, 1060),
        column_config={"what happened": st.column_config.TextColumn(width="large")},
    )


def render_step_inspector(steps: Sequence[TraceStep], *, key: str) -> None:
    """A step's full input, output and attributes, for the one step the person picks."""
    by_seq = {s.seq: s for s in steps}
    labels = {s.seq: f"{s.seq}: {s.kind.value} {s.name}" for s in steps}
    chosen = st.selectbox(
        "Inspect a step",
        list(by_seq),
        index=None,
        format_func=partial(option_label, labels),
        placeholder="Choose a step to see its input and output",
        key=key,
    )
    if chosen is not None:
        step = by_seq[chosen]
        st.json(
            {"input": step.input, "output": step.output, "attributes": step.attributes},
            expanded=2,
        )


def render_trace(trace: RunTrace, *, now: datetime, usage: RunUsage | None = None) -> None:
    """The run view: header, task, timeline, latency, model calls (a chat planner's), tool
    calls, decisions, output, version."""
    run = trace.run
    st.subheader(f"Run {run.id}: {run.agent} v{run.version}")
    if run.eval_run_id is not None:
        st.info(
            f"This run belongs to evaluation {run.eval_run_id}: it ran in the evaluation's "
            "sandbox, its reviews were answered by the suite's scripted reviewer, and it counts "
            "in no production KPI. Its results are on the Evaluations page.",
            icon=":material/fact_check:",
        )
    status, agent_time, steps, claims = st.columns(4)
    # The status with the answer's resolution: a refund a person rejected ends "succeeded ·
    # declined", which nobody should read as a refund made.
    resolution = (run.output or {}).get("resolution") if isinstance(run.output, dict) else None
    status.metric(
        "Status",
        f"{run.status.value} · {resolution}" if resolution else run.status.value,
        help="The run's status and, once it answered, the answer's resolution.",
    )
    agent_time.metric("Agent time", f"{run.agent_time_ms:,.0f} ms")
    steps.metric("Steps", run.step_count)
    claims.metric("Claims", run.claims)
    st.caption(
        f"Task {run.task_id} · created {when(run.created_at)} · started {when(run.started_at)}"
        f" · finished {when(run.finished_at)}"
        + (f" · lease held by {run.lease_owner}" if run.lease_owner else "")
        + (
            f" · {run.tokens_in + run.tokens_out:,} tokens, ${run.cost_usd:.4f}"
            if run.tokens_in
            else ""
        )
    )
    if run.error_class is not None:
        st.error(f"{run.error_class.value}: {run.error_message or 'no message'}")
    elif not run.status.is_terminal:
        st.info(f"The run is {run.status.value.replace('_', ' ')}; this page follows it live.")

    st.markdown("**Task**")
    st.json(trace.task_input, expanded=1)

    st.markdown("**Trace**")
    if trace.steps_truncated:
        st.caption(f"Showing the first {len(trace.steps)} of {run.step_count} steps.")
    clicked = render_waterfall(trace.steps, key="runs.waterfall")
    # A click on a bar opens that step below (once per click: the inspector stays free).
    if clicked is not None and st.session_state.get("runs.waterfall.opened") != clicked:
        st.session_state["runs.waterfall.opened"] = clicked
        st.session_state["runs.step"] = clicked
    render_step_inspector(trace.steps, key="runs.step")
    if st.toggle("Read the run as a conversation", key="runs.conversation"):
        render_conversation(trace.steps)
    st.markdown("**Timeline**")
    render_timeline(trace.steps, key="runs.timeline")

    _render_latency(trace.steps)
    if usage is not None:
        _render_model_calls(usage)
    _render_tool_calls(trace)
    _render_decisions(trace, now=now)
    _render_output(trace)
    _render_version(trace)


def _render_model_calls(usage: RunUsage) -> None:
    st.markdown("**Model calls**")
    st.caption(
        f"{usage.model_calls} calls ({usage.failed_calls} failed) · "
        f"{usage.tokens_in:,} tokens in, {usage.tokens_out:,} out · ${usage.cost_usd:.4f}"
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "step": call.seq,
                    "model": call.model,
                    "status": call.status,
                    "error class": call.error_class or "",
                    "tokens in": call.prompt_tokens,
                    "tokens out": call.completion_tokens,
                    "cost (USD)": round(call.cost_usd, 6),
                    "model latency (ms)": call.latency_ms,
                    "HTTP attempts": " → ".join(call.http),
                    "finish": call.finish_reason or "",
                }
                for call in usage.calls
            ]
        ),
        hide_index=True,
        key="runs.model_calls",
    )


def _render_latency(steps: Sequence[TraceStep]) -> None:
    timed = [s for s in steps if s.kind not in NOT_LATENCY and s.duration_ms]
    st.markdown("**Latency by step**")
    if not timed:
        st.caption("No timed steps yet.")
        return
    frame = pd.DataFrame(
        {
            "step": [f"{s.seq:03d} {s.name}" for s in timed],
            "duration ms": [s.duration_ms for s in timed],
            "kind": [s.kind.value for s in timed],
        }
    )
    # One horizontal bar per step, each about 24 px tall, with the step's name in full on the
    # axis: a fixed-height vertical chart squeezed dozens of bars and cut their labels.
    st.bar_chart(
        frame,
        x="step",
        y="duration ms",
        color="kind",
        sort=False,
        horizontal=True,
        height=LATENCY_BAR_PX * len(timed) + LATENCY_AXES_PX,
    )


def _render_tool_calls(trace: RunTrace) -> None:
    st.markdown("**Tool calls**")
    if not trace.tool_calls:
        st.caption("The run called no tool.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "call": t.call_id,
                    "tool": t.tool,
                    "status": t.status.value,
                    "attempts": t.attempts,
                    "duration ms": round(t.duration_ms, 2) if t.duration_ms is not None else None,
                    "error class": t.error_class.value if t.error_class else "",
                    "error": t.error_message or "",
                    "side effect": t.side_effect.value,
                    "idempotent": t.idempotent,
                    "args": compact(t.args),
                }
                for t in trace.tool_calls
            ]
        ),
        hide_index=True,
        key="runs.tool_calls",
    )


def _render_decisions(trace: RunTrace, *, now: datetime) -> None:
    st.markdown("**Human decisions**")
    if not trace.reviews:
        st.caption("No step of this run needed a person.")
        return
    decisions = {d.review_id: d for d in trace.decisions}
    rows = []
    for review in trace.reviews:
        decision = decisions.get(review.id)
        waited = ((review.decided_at or now) - review.created_at).total_seconds()
        rows.append(
            {
                "review": f"/queue?review={review.id}",
                "kind": review.kind.value,
                "tool": review.tool or "",
                "rule": review.rule_id or "",
                "tier": review.tier,
                "status": review.status.value,
                "decided by": review.decided_by or "",
                "reason": decision.reason if decision else "",
                "edited args": compact(decision.args) if decision and decision.args else "",
                "waited": duration(waited) + ("" if review.decided_at else " so far"),
            }
        )
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        key="runs.decisions",
        column_config={
            "review": st.column_config.LinkColumn("review", display_text=r"review=(\d+)")
        },
    )


def _render_output(trace: RunTrace) -> None:
    st.markdown("**Final output**")
    finals = [s for s in trace.steps if s.kind is StepKind.FINAL_OUTPUT]
    if not finals and trace.run.output is None:
        st.caption("No final answer yet.")
        return
    if finals:
        out = finals[-1].output or {}
        problems = out.get("problems") or []
        if problems:
            st.error("The answer breaks the output contract: " + "; ".join(map(str, problems)))
        else:
            st.success("The answer meets the output contract.")
    answer = trace.run.output if trace.run.output is not None else finals[-1].output
    st.json(answer, expanded=2)


def _render_version(trace: RunTrace) -> None:
    version = trace.version
    st.markdown(f"**Version {version.agent} v{version.number}, as pinned when the run started**")
    st.caption(
        f"Content hash {version.content_hash[:12]} · policy hash {version.policy_hash[:12]} · "
        f"created by {version.created_by} on {when(version.created_at)}"
    )
    rules = version.rules
    st.caption(f"Policy default: {version.policy.get('default', '?')}")
    if rules:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "rule": r.get("id"),
                        "tool": r.get("tool", "*"),
                        "when": r.get("when", ""),
                        "effect": r.get("effect"),
                        "reason": r.get("reason"),
                        "override roles": ", ".join(r.get("override_roles", [])),
                    }
                    for r in rules
                ]
            ),
            hide_index=True,
            key="runs.rules",
        )
    # The YAML can be long: it renders only when asked for.
    if st.toggle("Show the version's YAML", key="runs.show_yaml"):
        st.code(version.source_yaml, language="yaml")
