"""The recorded decisions a replay reads, and what a candidate policy decides on each.

A decision's trace step keeps what its rules read (``agent/runtime/session.py``). What the
original rules did not read comes from stored rows where they hold it; facts and counters exist
only as read at the time, so a candidate that reads others cannot be replayed on that decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from agent.mediation.policy import CompiledPolicy
from agent.mediation.variables import CallTally, RunFigures, decision_variables
from storage.enums import StepKind, StepStatus
from storage.models import Agent, Run, Step, Task
from storage.tables import AGENT_VERSIONS, RUNS, STEPS


@dataclass
class RecordedDecision:
    """One recorded policy decision: the first on a proposed call."""

    run_id: int
    call_id: str
    tool: str
    version: int
    recorded: str
    record: Mapping[str, Any] | None
    seq: int


def decide(
    policy: CompiledPolicy, decision: RecordedDecision, history: History
) -> tuple[str, str | None] | str:
    """The candidate's effect and rule on a recorded decision, or why it cannot be told.

    The variables come from the decision's record; what the original rules did not read is
    taken from stored rows where they hold it (the task's input, the proposed arguments, the
    agent and version, the run's figures rebuilt from its trace up to the decision). Facts and
    counters exist only as read at the time: a candidate reading others cannot be replayed.
    """
    record = decision.record
    read = record.get("read") if record is not None else None
    if not isinstance(read, Mapping) or not decision.recorded:
        return "recorded before decisions kept what they read"
    variables = dict(read)
    needed = policy.variables_needed(decision.tool) & _VARIABLES
    for variable in sorted(needed):
        names = policy.names_read(decision.tool, variable)
        recorded = variables.get(variable)
        if isinstance(recorded, Mapping) and (
            variable == "args" or (names is not None and names <= set(recorded))
        ):
            continue
        if variable in ("facts", "counters"):
            missing = sorted(set(names or ()) - set(recorded or {}))
            what = f"{variable}.{missing[0]}" if missing else f"all of '{variable}'"
            return f"the candidate reads {what}, which was not read when it was decided"
        variables[variable] = history.rebuild(variable, decision)
    if _redacted({k: variables[k] for k in needed if k in variables}):
        return "a value the candidate reads was redacted as a secret"
    result = policy.evaluate(decision.tool, variables)
    return result.effect.value, result.rule_id


_VARIABLES = frozenset({"args", "task", "run", "agent", "facts", "counters"})


class History:
    """What stored rows say about a decision beyond its record, read once per run."""

    def __init__(self, session: Session, agent: Agent) -> None:
        self.session = session
        self.agent = agent
        self._tasks: dict[int, dict[str, Any]] = {}
        self._steps: dict[int, list[Step]] = {}

    def rebuild(self, variable: str, decision: RecordedDecision) -> dict[str, Any]:
        if variable == "args":
            return self._args(decision)
        if variable == "agent":
            return {"name": self.agent.name, "version": decision.version}
        if variable == "task":
            return self._task(decision.run_id)
        return self._run(decision)

    def _args(self, decision: RecordedDecision) -> dict[str, Any]:
        """The call's arguments as proposed (as the trace keeps them: secrets redacted)."""
        step = next(s for s in self._steps_of(decision.run_id) if s.seq == decision.seq)
        args = (step.input or {}).get("args")
        return dict(args) if isinstance(args, Mapping) else {}

    def _steps_of(self, run_id: int) -> list[Step]:
        if run_id not in self._steps:
            self._steps[run_id] = list(
                self.session.exec(
                    select(Step).where(col(Step.run_id) == run_id).order_by(col(Step.seq))
                ).all()
            )
        return self._steps[run_id]

    def _task(self, run_id: int) -> dict[str, Any]:
        if run_id not in self._tasks:
            found = self.session.exec(
                select(Task.input)
                .join(Run, col(Run.task_id) == col(Task.id))
                .where(col(Run.id) == run_id)
            ).first()
            self._tasks[run_id] = dict(found or {})
        return self._tasks[run_id]

    def _run(self, decision: RecordedDecision) -> dict[str, Any]:
        """The run's figures and tally just before the decision, replayed from its trace."""
        earlier = [s for s in self._steps_of(decision.run_id) if s.seq < decision.seq]
        tally = CallTally.of(
            (s.name, (s.input or {}).get("args"))
            for s in earlier
            if s.kind is StepKind.EXECUTE_TOOL and s.status is StepStatus.OK
        )
        figures = RunFigures(
            run_id=decision.run_id,
            steps=len(earlier),
            turns=sum(1 for s in earlier if s.kind is StepKind.PROPOSAL),
            denials=sum(1 for s in earlier if s.status is StepStatus.DENIED),
            rejections=sum(
                1
                for s in earlier
                if s.kind is StepKind.HUMAN_APPROVAL
                and (s.output or {}).get("decision") == "rejected"
            ),
        )
        run: dict[str, Any] = decision_variables({}, {}, figures, tally, {})["run"]
        return run


def _redacted(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_redacted(v) for v in value.values())
    if isinstance(value, list):
        return any(_redacted(v) for v in value)
    return bool(value == "[redacted]")


def recorded_decisions(
    session: Session, agent: Agent, start: datetime, until: datetime
) -> tuple[list[RecordedDecision], int]:
    """The first policy decision on each call the agent proposed in the window, and how many
    calls were refused before policy (by scope or arguments), which no policy decided.

    Only the decision's record is read from each step (a JSON path in the database), not the
    whole step: a replay reads every decision of the window.
    """
    output = STEPS.c.output
    rows = session.connection().execute(
        sa.select(
            STEPS.c.run_id,
            STEPS.c.call_id,
            STEPS.c.name,
            STEPS.c.seq,
            output["policy"].label("record"),
            output["stage"].as_string().label("stage"),
            AGENT_VERSIONS.c.number,
        )
        .join(RUNS, RUNS.c.id == STEPS.c.run_id)
        .join(AGENT_VERSIONS, AGENT_VERSIONS.c.id == RUNS.c.version_id)
        .where(RUNS.c.agent_id == agent.id)
        .where(RUNS.c.eval_run_id.is_(None))
        .where(STEPS.c.kind == StepKind.APPLY_GUARDRAIL)
        .where(STEPS.c.started_at >= start)
        .where(STEPS.c.started_at <= until)
        .order_by(STEPS.c.run_id, STEPS.c.seq)
    )
    seen: set[tuple[int, str]] = set()
    found = []
    before_policy = 0
    for run_id, call_id, tool, seq, record, stage, number in rows:
        key = (run_id, str(call_id))
        if key in seen:
            continue  # the first decision on a call is the one on its proposal
        seen.add(key)
        if not isinstance(record, Mapping) and stage in _BEFORE_POLICY:
            before_policy += 1
            continue
        found.append(
            RecordedDecision(
                run_id=run_id,
                call_id=str(call_id),
                tool=tool,
                version=number,
                recorded=str(record.get("effect")) if isinstance(record, Mapping) else "",
                record=record if isinstance(record, Mapping) else None,
                seq=seq,
            )
        )
    return found, before_policy


_BEFORE_POLICY = frozenset({"scope", "arguments"})
