"""The review pane: what the agent proposed and why it was stopped, the trace so far, and the
decisions the signed-in person may take, each bound to the review version they saw.

Decisions run in button callbacks, before the page redraws: the outcome (or a conflict naming
who decided first) is kept as a message and shown above the pane.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from agent import reviews
from agent.errors import DecisionConflict, ServiceError
from agent.reads.queue import ReviewContext, preview_edit
from agent.reads.runs import TraceStep
from agent.runtime.escalation import describe_risk
from console.components.data import forget_lists
from console.components.feedback import describe, flash, sentence
from console.components.formatting import compact, countdown, money, overdue, when
from console.components.teamwork import hold_panel
from console.components.trace import render_timeline
from console.resources import platform
from console.session import current_user
from storage.enums import DecisionKind, ReviewKind, StepKind
from storage.errors import StorageError

FLASH = "queue.flash"


def reason_key(review_id: int) -> str:
    """The widget key of the reason typed for ``review_id``."""
    return f"queue.reason.{review_id}"


def edit_key(review_id: int) -> str:
    """The widget key of the edited arguments of ``review_id``."""
    return f"queue.edit.{review_id}"


def render_review(context: ReviewContext, *, now: datetime) -> None:
    """The whole pane for one review, open or already decided."""
    review = context.review
    subject = review.tool or "the final answer"
    st.subheader(f"Review {review.id}: {review.kind.value.replace('_', ' ')} of {subject}")
    sla = countdown(review.sla_due_at, now)
    st.caption(
        f"{review.agent} v{review.version} · run {review.run_id} · task {context.task_id} · "
        f"tier {review.tier} · raised {when(review.created_at)} · SLA {sla}"
    )
    if not review.is_open:
        st.info(
            f"{review.status.value.capitalize()} by {review.decided_by or 'the system'} at "
            f"{when(review.decided_at)}; nothing is left to decide."
        )
    elif overdue(review.sla_due_at, now):
        st.warning(f"This review is {sla}.")
    if review.is_open:
        hold_panel(context, now)

    _render_evidence(context)
    call, task = st.columns(2)
    with call:
        st.markdown("**Proposed call**" if review.tool else "**Proposed final answer**")
        st.json({"tool": review.tool, "args": review.args} if review.tool else review.args)
        st.markdown(f"**Rule `{review.rule_id or '-'}`**: {review.reason}")
        if context.rule:
            condition = context.rule.get("when")
            st.caption(
                f"effect {context.rule.get('effect')}"
                + (f" when `{condition}`" if condition else "")
                + (
                    f" · overridable by {', '.join(review.override_roles)}"
                    if review.override_roles
                    else ""
                )
            )
    with task:
        st.markdown("**Task**")
        st.json(context.task_input, expanded=1)
    st.page_link(
        "views/run.py",
        label=f"Open run {review.run_id}",
        icon=":material/timeline:",
        query_params={"run": str(review.run_id)},
    )

    st.markdown("**Reasoning trace up to this point**")
    render_timeline(context.trace, key="queue.trace")

    if context.decisions:
        st.markdown("**Decisions**")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "decision": d.decision.value,
                        "by": d.actor,
                        "at": when(d.created_at),
                        "reason": d.reason,
                        "args": compact(d.args) if d.args else "",
                    }
                    for d in context.decisions
                ]
            ),
            hide_index=True,
            key="queue.decisions",
        )
    if review.is_open:
        _render_actions(context)


def _stopping_decision(trace: Sequence[TraceStep]) -> TraceStep | None:
    """The gate's last decision that did not simply allow the call: the one this review is
    about."""
    for step in reversed(trace):
        if step.kind is StepKind.APPLY_GUARDRAIL and (step.output or {}).get("effect") != "allow":
            return step
    return None


def _render_evidence(context: ReviewContext) -> None:
    """What a reviewer decides on, above everything else: the policy's decision with the facts
    it read, and what the agent's tools found before it asked (a fraud score, an order)."""
    review = context.review
    decision = _stopping_decision(context.trace)
    out: dict[str, Any] = (decision.output or {}) if decision else {}
    read: dict[str, Any] = (out.get("policy") or {}).get("read") or {}
    facts = {**(read.get("facts") or {}), **(read.get("counters") or {})}
    amount = (review.args or {}).get("amount")
    with st.container(border=True):
        left, right = st.columns(2)
        with left:
            st.markdown("**Evidence: the policy's decision**")
            effect = out.get("effect") or review.kind.value
            st.markdown(
                f"{str(effect).capitalize()} at the {out.get('stage', 'policy')} stage by rule "
                f"`{review.rule_id or '-'}`: {review.reason}"
            )
            if amount is not None:
                st.markdown(
                    f"Amount: **{money(amount, (review.args or {}).get('currency'))}** · "
                    f"risk: {describe_risk(review.risk)}"
                )
            if facts:
                st.markdown(
                    "Facts the rule read: "
                    + " · ".join(
                        f"`{name}` = {compact(value, 60)}" for name, value in facts.items()
                    )
                )
        with right:
            st.markdown("**Evidence: what the agent's tools found**")
            found = [
                s
                for s in context.trace
                if s.kind is StepKind.OBSERVATION and (s.output or {}).get("status") == "ok"
            ]
            if not found:
                st.caption("No tool answered before this review.")
            for step in found:
                content = (step.output or {}).get("content")
                st.markdown(f"`{step.name}` → {compact(content, 160)}")


def _render_actions(context: ReviewContext) -> None:
    review = context.review
    permitted = context.permitted
    st.markdown("**Decide**")
    if not permitted:
        st.caption(
            "You may read this review but not decide it: operators decide reviews"
            + (
                f", and only {' or '.join(review.override_roles)} may override this block."
                if review.override_roles
                else "."
            )
        )
        return
    if review.kind is ReviewKind.OUTCOME_UNKNOWN:
        st.caption(
            "The worker lost track of this call: approve if it took effect, reject if it did "
            "not (the run then goes on accordingly)."
        )
    st.text_input(
        "Reason",
        key=reason_key(review.id),
        placeholder="Required to reject or override; recorded with any decision",
    )
    seen = (review.id, review.row_version)
    buttons = st.columns(3)
    if DecisionKind.APPROVE in permitted:
        buttons[0].button(
            "Approve",
            key="queue.approve",
            type="primary",
            icon=":material/check:",
            on_click=_decide,
            args=(*seen, DecisionKind.APPROVE.value),
        )
    if DecisionKind.REJECT in permitted:
        buttons[1].button(
            "Reject",
            key="queue.reject",
            icon=":material/block:",
            on_click=_decide,
            args=(*seen, DecisionKind.REJECT.value),
        )
    if DecisionKind.OVERRIDE in permitted:
        buttons[2].button(
            "Override the block",
            key="queue.override",
            icon=":material/gavel:",
            on_click=_decide,
            args=(*seen, DecisionKind.OVERRIDE.value),
        )
    elif review.kind is ReviewKind.BLOCK:
        st.caption(
            f"Only {' or '.join(review.override_roles) or 'nobody'} may override rule "
            f"{review.rule_id}; you may reject it."
        )
    if DecisionKind.EDIT in permitted:
        _render_edit(context)


def _render_edit(context: ReviewContext) -> None:
    review = context.review
    st.markdown("**Edit and approve**")
    key = edit_key(review.id)
    st.session_state.setdefault(key, json.dumps(review.args or {}, indent=2))
    text = st.text_area(
        "Arguments (JSON)" if review.tool else "Final answer (JSON)",
        key=key,
        height=180,
        help="Checked against the schema as you edit; the policy checks it again on approval.",
    )
    preview = preview_edit(context, text or "")
    if preview.problems:
        st.error(" ".join(_sentence(p) for p in preview.problems))
    elif context.args_schema is None:
        st.caption("No schema is available here; the service checks the edit on approval.")
    if preview.changes:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "field": c.path,
                        "change": c.change,
                        "proposed": compact(c.before) if c.change != "added" else "",
                        "edited": compact(c.after) if c.change != "removed" else "",
                    }
                    for c in preview.changes
                ]
            ),
            hide_index=True,
            key="queue.edit_diff",
        )
    elif preview.args is not None:
        st.caption("No change from the proposal yet.")
    st.button(
        "Approve with these arguments" if review.tool else "Accept this answer",
        key="queue.edit_approve",
        icon=":material/edit_note:",
        disabled=not preview.submittable,
        on_click=_decide,
        args=(review.id, review.row_version, DecisionKind.EDIT.value),
    )


def _sentence(problem: str) -> str:
    problem = sentence(problem)
    return problem if problem.endswith(".") else problem + "."


def _decide(review_id: int, seen_version: int, kind: str) -> None:
    """Button callback: take one decision as the signed-in person, against what they saw."""
    actor = current_user()
    if actor is None:
        flash(FLASH, "error", "your session ended; sign in again to decide.")
        return
    decision = DecisionKind(kind)
    reason = str(st.session_state.get(reason_key(review_id)) or "")
    args = st.session_state.get(edit_key(review_id)) if decision is DecisionKind.EDIT else None
    try:
        result = reviews.decide(
            platform(),
            actor,
            review_id,
            decision,
            reason=reason,
            args=args,
            seen_version=seen_version,
        )
    except DecisionConflict as exc:
        flash(FLASH, "warning", str(exc))
        forget_lists()
        return
    except (ServiceError, StorageError, SQLAlchemyError) as exc:
        flash(FLASH, "error", describe(exc))
        return
    forget_lists()
    if result.waiting_for_more:
        flash(FLASH, "info", f"review {review_id}: {result.note}")
        return
    tail = "; the run resumes." if result.run_resumes else "."
    message = f"review {review_id} {result.status.value} by {actor.name}{tail}"
    if result.note:
        # Recorded, but the gate will not let the call through as things stand now.
        flash(FLASH, "warning", f"{message} Note: {result.note}")
        return
    flash(FLASH, "success", message)
