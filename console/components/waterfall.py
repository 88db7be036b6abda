"""A run's trace as a waterfall: every step a bar on one time axis, nested run → turn →
proposal → policy decision → tool attempts → review, the human wait drawn as such, errors
marked; a click on a bar opens that step's input and output.

Steps carry no parent id: the nesting follows from the step's kind, which the runtime writes in
a fixed order within each turn (``DEPTH``). Long runs are drawn a page of ``PAGE`` steps at a
time, so a 5,000-step run sends the browser a chart of ``PAGE`` bars, not 5,000.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from agent.reads.runs import TraceStep
from console.components.formatting import compact
from storage.enums import StepKind

DEPTH = {
    StepKind.INVOKE_AGENT: 0,
    StepKind.PROPOSAL: 1,
    StepKind.CHAT: 1,
    StepKind.REASONING: 1,
    StepKind.FINAL_OUTPUT: 1,
    StepKind.APPLY_GUARDRAIL: 2,
    StepKind.HUMAN_APPROVAL: 2,
    StepKind.EXECUTE_TOOL: 3,
    StepKind.OBSERVATION: 3,
}
HUMAN_WAIT = "human wait"
PAGE = 200
BAR_PX = 22
AXES_PX = 90
# An instant step (a proposal that took no time) still gets a visible sliver.
MIN_BAR_MS = 0.5


def waterfall_frame(steps: Sequence[TraceStep]) -> pd.DataFrame:
    """One row per step: where its bar starts and ends (ms since the run began), its nested
    label, its lane (its kind, or ``human wait``) and whether it failed."""
    start = steps[0].started_at if steps else None
    rows = []
    for step in steps:
        offset = (step.started_at - start).total_seconds() * 1000 if start else 0.0
        length = max(step.duration_ms or 0.0, MIN_BAR_MS)
        failed = step.error_class is not None
        rows.append(
            {
                "seq": step.seq,
                "step": f"{step.seq:>5} {'  ' * DEPTH.get(step.kind, 1)}{step.name}",
                "lane": HUMAN_WAIT if step.kind is StepKind.HUMAN_APPROVAL else step.kind.value,
                "start ms": round(offset, 2),
                "end ms": round(offset + length, 2),
                "duration ms": round(step.duration_ms, 2) if step.duration_ms is not None else None,
                "error": step.error_class.value if failed and step.error_class else "",
                "failed": failed,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["seq", "step", "lane", "start ms", "end ms", "duration ms", "error", "failed"],
    )


def waterfall_spec(frame: pd.DataFrame) -> dict[str, Any]:
    """The Vega-Lite spec of the bars on a time axis: one row per step in order, a red outline
    and a cross on the steps that failed; clicking a bar selects its step (``step``).

    Written as the spec itself rather than built with Altair: Altair checks a chart against
    the whole Vega-Lite schema when it is serialised, which costs 0.1-0.3 s per draw and would
    take most of the run page's half-second budget on its own."""
    failed = {"field": "failed", "equal": True}
    y = {
        "field": "step",
        "type": "nominal",
        "sort": frame["step"].tolist(),
        "title": None,
        "axis": {"labelLimit": 320},
    }
    tooltip = [
        {"field": "seq", "type": "quantitative"},
        {"field": "step", "type": "nominal"},
        {"field": "lane", "type": "nominal", "title": "kind"},
        {"field": "start ms", "type": "quantitative"},
        {"field": "duration ms", "type": "quantitative"},
        {"field": "error", "type": "nominal"},
    ]
    return {
        "height": BAR_PX * len(frame) + AXES_PX,
        "layer": [
            {
                "params": [
                    {"name": "step", "select": {"type": "point", "fields": ["seq"], "on": "click"}}
                ],
                "mark": {"type": "bar", "height": BAR_PX - 6},
                "encoding": {
                    "y": y,
                    "x": {
                        "field": "start ms",
                        "type": "quantitative",
                        "title": "ms since the run began",
                    },
                    "x2": {"field": "end ms"},
                    "color": {
                        "field": "lane",
                        "type": "nominal",
                        "title": "kind",
                        "legend": {"orient": "bottom"},
                    },
                    "stroke": {"condition": {"test": failed, "value": "#d62728"}, "value": None},
                    "strokeWidth": {"condition": {"test": failed, "value": 2}, "value": 0},
                    "opacity": {"condition": {"param": "step", "value": 1.0}, "value": 0.55},
                    "tooltip": tooltip,
                },
            },
            {
                "transform": [{"filter": failed}],
                "mark": {
                    "type": "text",
                    "text": "✕",
                    "color": "#d62728",
                    "dx": 8,
                    "fontWeight": "bold",
                },
                "encoding": {"y": y, "x": {"field": "end ms", "type": "quantitative"}},
            },
        ],
    }


def render_waterfall(steps: Sequence[TraceStep], *, key: str) -> int | None:
    """Draw the waterfall (a page of it for a long run); the seq of the step clicked, if any."""
    if not steps:
        st.info("No steps were recorded.")
        return None
    pages = (len(steps) + PAGE - 1) // PAGE
    number = st.pagination(pages, key=f"{key}.page") if pages > 1 else 1
    shown = list(steps[(number - 1) * PAGE : number * PAGE])
    if pages > 1:
        st.caption(f"Steps {shown[0].seq} to {shown[-1].seq} of {len(steps):,}.")
    frame = waterfall_frame(steps)
    frame = frame[frame["seq"].isin([s.seq for s in shown])]
    event: Any = st.vega_lite_chart(
        frame, waterfall_spec(frame), key=key, on_select="rerun", selection_mode="step"
    )
    # A state object on a fresh run, a plain mapping when the selection came from the browser.
    selection = event.get("selection") if isinstance(event, dict) else event.selection
    picked = ((selection or {}).get("step") or [{}])[0]
    seq = picked.get("seq") if isinstance(picked, dict) else None
    return int(seq) if seq is not None else None


def render_conversation(steps: Sequence[TraceStep]) -> None:
    """The run as a conversation, not JSON: the agent's reasoning and the calls it proposed,
    what each tool answered, what a person decided, and the final answer's check."""
    for step in steps:
        out: dict[str, Any] = step.output or {}
        if step.kind is StepKind.PROPOSAL:
            with st.chat_message("assistant"):
                if out.get("reasoning"):
                    st.markdown(str(out["reasoning"]))
                for call in out.get("calls") or []:
                    st.markdown(
                        f"calls `{call.get('tool')}` with `{compact(call.get('args'), 300)}`"
                    )
                if out.get("final_answer") is not None:
                    st.markdown(f"answers: `{compact(out['final_answer'], 500)}`")
                if out.get("error"):
                    st.error(str(out["error"]))
        elif step.kind is StepKind.OBSERVATION:
            with st.chat_message("tool", avatar=":material/build:"):
                st.caption(f"{step.name} · {out.get('status', '')}")
                st.markdown(f"`{compact(out.get('content'), 500)}`")
        elif step.kind is StepKind.APPLY_GUARDRAIL and out.get("effect") != "allow":
            with st.chat_message("policy", avatar=":material/policy:"):
                st.markdown(
                    f"{str(out.get('effect', '?')).capitalize()} `{step.name}` by rule "
                    f"`{out.get('rule_id') or '-'}`: {out.get('reason') or ''}"
                )
        elif step.kind is StepKind.HUMAN_APPROVAL:
            with st.chat_message("user", avatar=":material/person:"):
                st.markdown(
                    f"{out.get('decision')} by {out.get('decided_by') or 'the system'}: "
                    f"{out.get('reason') or 'no reason given'}"
                )
