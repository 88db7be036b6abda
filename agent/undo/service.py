"""Starting an undo, and reading what links an executed call to the undo attempts of it.

An undo is a new task of the same agent, on its active version, whose input is the original
task's (so policy still binds the call to the task's own subject) with ``intent: undo`` and the
compensating call under ``steward_undo``. Its run proposes that one call, which the gate decides
like any other: allowed, escalated to a person, or denied. The ``compensations`` row and the
task are written in one transaction with their audit events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from agent.actors import READ_ROLES, UNDO_ROLES, Actor, require
from agent.errors import InvalidInput, NotFound, ServiceError
from agent.inputs import json_object
from agent.platform import Platform
from agent.tools.base import ToolSpec
from agent.undo.derive import UNDO_CALL_ID, UNDO_KEY, compensating_args
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import TaskStatus, ToolCallStatus
from storage.models import Agent, Compensation, Run, Task, ToolCall

_OPEN_TASK = (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.WAITING_REVIEW)


@dataclass(frozen=True)
class UndoStarted:
    """An undo that was started: its task (and link row), and the call it will propose."""

    compensation_id: int
    task_id: int
    original_call_id: int
    tool: str
    args: dict[str, Any]


@dataclass(frozen=True)
class UndoAttempt:
    """One attempted compensation of an executed call, and how far it got.

    Attributes:
        compensation_id: the link row.
        original_call_id: the ledger row of the call it undoes.
        original_run_id: that call's run.
        task_id: the undo task.
        run_id: the undo task's run, once a worker started it.
        tool: the compensating tool.
        args: the arguments it was derived with.
        reason: why the person asked for it.
        requested_by: who asked.
        requested_at: when.
        task_status: the undo task's status.
        call_status: the compensating call's ledger status, once it was held or run (None:
            not executed, e.g. waiting for its review, rejected or denied).
    """

    compensation_id: int
    original_call_id: int
    original_run_id: int
    task_id: int
    run_id: int | None
    tool: str
    args: dict[str, Any]
    reason: str
    requested_by: str
    requested_at: datetime
    task_status: TaskStatus
    call_status: ToolCallStatus | None

    @property
    def compensated(self) -> bool:
        """The compensating call ran and succeeded (an attempt, not proof of a reversal)."""
        return self.call_status is ToolCallStatus.SUCCEEDED

    @property
    def in_progress(self) -> bool:
        return self.task_status in _OPEN_TASK


@dataclass(frozen=True)
class UndoOffer:
    """An executed call of a run that can be undone now, and the tool that would undo it."""

    call_id: int
    tool: str
    compensating_tool: str
    args: dict[str, Any]


@dataclass(frozen=True)
class UndoLinks:
    """A run's undo links both ways: attempts to undo its calls, the call it undoes, and the
    calls that may be undone now (none for an evaluation's run)."""

    attempts: tuple[UndoAttempt, ...]
    undoes: UndoAttempt | None
    offers: tuple[UndoOffer, ...] = ()


def undo_call(platform: Platform, actor: Actor, call_id: int, *, reason: str) -> UndoStarted:
    """Start the undo of executed call ``call_id`` (its ledger row): a new task whose one call
    is the tool's compensating tool, through the same gate as any call.

    Raises:
        Forbidden: the actor is neither an operator nor a manager.
        NotFound: no such call.
        InvalidInput: no reason; the call did not succeed, changed nothing, belongs to an
            evaluation, or its tool cannot be undone (the tool's own reason is given); an undo of
            it is in progress or already compensated it; its arguments cannot be derived.
    """
    require(actor, UNDO_ROLES, f"undo call {call_id}")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("an undo needs a reason.")
    with write_session(platform.engine) as session:
        # Locked, so two people undoing the same call at once start one undo.
        call = session.get(ToolCall, call_id, with_for_update=True)
        if call is None:
            raise NotFound(f"call {call_id} does not exist.")
        run = session.get(Run, call.run_id)
        task = session.get(Task, run.task_id) if run is not None else None
        if run is None or task is None:  # pragma: no cover - foreign keys
            raise NotFound(f"the run of call {call_id} does not exist.")
        spec = _undoable(platform, call, run)
        _no_other_attempt(session, call_id)
        args = compensating_args(spec, call_id, call.args, call.result)
        assert spec.compensating_tool is not None
        agent = session.get(Agent, run.agent_id)
        if agent is None or agent.active_version_id is None:
            raise InvalidInput("the agent has no active version to run the undo on.")
        undo_input = json_object(
            {
                **{k: v for k, v in task.input.items() if k != UNDO_KEY},
                "intent": "undo",
                UNDO_KEY: {
                    "call": call_id,
                    "run": run.id,
                    "tool": spec.compensating_tool,
                    "args": args,
                    "reason": reason,
                },
            },
            what="the undo task",
        )
        undo_task = Task(
            agent_id=run.agent_id,
            input=undo_input,
            submitted_by=actor.name,
            source="undo",
            priority=task.priority,
        )
        session.add(undo_task)
        session.flush()
        assert undo_task.id is not None
        assert run.id is not None
        link = Compensation(
            original_call_id=call_id,
            original_run_id=run.id,
            task_id=undo_task.id,
            call_id=UNDO_CALL_ID,
            tool=spec.compensating_tool,
            args=args,
            reason=reason[:2000],
            requested_by=actor.name,
        )
        session.add(link)
        session.flush()
        assert link.id is not None
        append_event(
            session,
            actor=actor.name,
            action="task.submit",
            target_type="task",
            target_id=undo_task.id,
            payload={"agent": agent.name, "source": "undo"},
        )
        append_event(
            session,
            actor=actor.name,
            action="call.undo",
            target_type="tool_call",
            target_id=call_id,
            payload={
                "run_id": run.id,
                "tool": call.tool,
                "compensating_tool": spec.compensating_tool,
                "undo_task_id": undo_task.id,
                "reason": reason,
            },
        )
        return UndoStarted(link.id, undo_task.id, call_id, spec.compensating_tool, args)


def undo_links(platform: Platform, actor: Actor, run_id: int) -> UndoLinks:
    """The undo attempts of run ``run_id``'s calls, and the call it undoes if it is an undo.

    Raises:
        Forbidden: the actor holds no role.
    """
    require(actor, READ_ROLES, f"read run {run_id}")
    with read_session(platform.engine) as session:
        run = session.get(Run, run_id)
        if run is None:
            return UndoLinks((), None)
        rows = list(
            session.exec(
                select(Compensation)
                .where(col(Compensation.original_run_id) == run_id)
                .order_by(col(Compensation.id))
            ).all()
        )
        own = session.exec(
            select(Compensation).where(col(Compensation.task_id) == run.task_id)
        ).first()
        attempts = tuple(_attempt(session, row) for row in rows)
        taken = {a.original_call_id for a in attempts if a.in_progress or a.compensated}
        executed = session.exec(
            select(ToolCall)
            .where(col(ToolCall.run_id) == run_id)
            .where(col(ToolCall.status) == ToolCallStatus.SUCCEEDED)
            .order_by(col(ToolCall.id))
        ).all()
        offers = []
        if run.eval_run_id is None and executed:
            try:
                specs = platform.versions.get(run.version_id).tool_specs
            except ServiceError:
                specs = {}  # a version this process cannot load: nothing is offered here
            for call in executed:
                spec = specs.get(call.tool)
                if spec is None or spec.compensating_tool is None or call.id in taken:
                    continue
                assert call.id is not None
                offers.append(
                    UndoOffer(call.id, call.tool, spec.compensating_tool, dict(call.args))
                )
        return UndoLinks(
            attempts, _attempt(session, own) if own is not None else None, tuple(offers)
        )


def _undoable(platform: Platform, call: ToolCall, run: Run) -> ToolSpec:
    if run.eval_run_id is not None:
        raise InvalidInput(
            f"call {call.id} belongs to an evaluation, whose effects were sandboxed; there is "
            "nothing to undo."
        )
    if call.status is not ToolCallStatus.SUCCEEDED:
        hint = (
            " (verify its outcome in its review first)"
            if call.status is ToolCallStatus.OUTCOME_UNKNOWN
            else ""
        )
        raise InvalidInput(
            f"call {call.id} is {call.status.value}; only a call that succeeded can be "
            f"undone{hint}."
        )
    spec = platform.versions.get(run.version_id).tool_specs.get(call.tool)
    if spec is None:
        raise InvalidInput(
            f"{call.tool} is no longer a tool of the run's version; it cannot be undone."
        )
    if not spec.has_side_effects:
        raise InvalidInput(
            f"call {call.id} of {call.tool} only read data; there is nothing to undo."
        )
    if spec.compensating_tool is None:
        why = spec.not_undoable_because or "it names no compensating tool"
        raise InvalidInput(f"{call.tool} cannot be undone: {why.rstrip('.')}.")
    return spec


def _no_other_attempt(session: Session, call_id: int) -> None:
    for row in session.exec(
        select(Compensation).where(col(Compensation.original_call_id) == call_id)
    ).all():
        attempt = _attempt(session, row)
        if attempt.in_progress or attempt.compensated:
            state = "compensated it" if attempt.compensated else f"is {attempt.task_status.value}"
            raise InvalidInput(
                f"call {call_id} already has an undo (task {attempt.task_id}) that {state}; "
                "see its run before starting another."
            )


def _attempt(session: Session, row: Compensation) -> UndoAttempt:
    task = session.get(Task, row.task_id)
    run_id = session.exec(
        select(Run.id).where(col(Run.task_id) == row.task_id).order_by(col(Run.id).desc())
    ).first()
    status = None
    if run_id is not None:
        status = session.exec(
            select(ToolCall.status)
            .where(col(ToolCall.run_id) == run_id)
            .where(col(ToolCall.call_id) == row.call_id)
        ).first()
    assert row.id is not None
    return UndoAttempt(
        compensation_id=row.id,
        original_call_id=row.original_call_id,
        original_run_id=row.original_run_id,
        task_id=row.task_id,
        run_id=run_id,
        tool=row.tool,
        args=dict(row.args),
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=row.created_at,
        task_status=task.status if task is not None else TaskStatus.QUEUED,
        call_status=ToolCallStatus(status) if status is not None else None,
    )
