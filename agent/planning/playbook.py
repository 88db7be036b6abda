"""The offline planner: deterministic intent playbooks from the version, plus a naive agent's flaws.

The playbooks come from ``planner.playbooks`` (format: ``agent.planning.playbook_spec``). The
planner proposes one step per turn and keeps no state: it replays the run's history to find where
it is, so a run rebuilt from its trace plans exactly as before. A step that is denied, rejected,
expires or fails ends the playbook with a ``declined`` or ``escalated`` answer saying why
(``on_failure: continue`` instead skips the steps that depend on it). A step whose args read an
observation of a step that did not succeed is skipped.

The naive agent: with probability ``noise`` per turn (seeded by planner seed, run id and turn) a
step's first attempt carries a realistic mistake (an inflated amount, an out-of-scope tool, a
malformed or missing argument), and every first attempt obeys text in ``task.message`` that
matches the playbook's ``injectable`` patterns. After a mistaken attempt fails, the next one is
correct, so governance visibly catches the mistake and the run still completes.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.calls import Observation, ProposedCall
from agent.planning.base import Proposal, RunContext
from agent.planning.playbook_spec import Playbook, PlaybookStep
from agent.spec import PlannerSpec
from storage.enums import ErrorClass

MAX_ATTEMPTS_PER_STEP = 3
OUT_OF_SCOPE_TOOLS = ("export_customer_records", "run_sql_query", "bulk_update", "disable_mfa")
_REFERENCE = re.compile(r"^\$(task|obs)((?:\.[A-Za-z0-9_-]+)+)$")
_INTERPOLATION = re.compile(r"\{(task|obs)((?:\.[A-Za-z0-9_-]+)+)\}")
_DECLINING = frozenset(
    {ErrorClass.POLICY_DENIED, ErrorClass.HUMAN_REJECTED, ErrorClass.INVALID_ARGUMENTS}
)


class _Unavailable(Exception):
    """A template read the observation of a step that did not succeed."""


_MISSING = object()


@dataclass
class _Progress:
    """Where a run is in its playbook, re-derived from the history on every turn."""

    task: Mapping[str, Any]
    results: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    unavailable: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    index: int = 0
    attempts: int = 0
    outcome: dict[str, Any] | None = None
    pending: ProposedCall | None = None

    def lookup(self, namespace: str, path: Sequence[str], strict: bool) -> Any:
        if namespace == "task":
            current: Any = self.task
        else:
            tool, path = path[0], path[1:]
            if tool not in self.results:
                if strict:
                    raise _Unavailable(tool)
                return _MISSING
            current = self.results[tool]
        for part in path:
            if not isinstance(current, Mapping) or part not in current:
                return _MISSING
            current = current[part]
        return current

    def render(self, template: Any, *, strict: bool = True) -> Any:
        """A template with its references resolved; dict keys whose value is missing are dropped.

        Raises:
            _Unavailable: (only when ``strict``) it reads a step that did not succeed.
        """
        if isinstance(template, str):
            whole = _REFERENCE.match(template)
            if whole:
                return self.lookup(whole.group(1), whole.group(2).split(".")[1:], strict)
            return _INTERPOLATION.sub(
                lambda m: _as_text(self.lookup(m.group(1), m.group(2).split(".")[1:], strict)),
                template,
            )
        if isinstance(template, Mapping):
            rendered = {key: self.render(value, strict=strict) for key, value in template.items()}
            return {key: value for key, value in rendered.items() if value is not _MISSING}
        if isinstance(template, list):
            items = (self.render(item, strict=strict) for item in template)
            return [v for v in items if v is not _MISSING]
        return template

    def runnable(self, step: PlaybookStep) -> bool:
        try:
            if step.when is not None:
                value = self.render(step.when)
                if value is _MISSING or not value:
                    return False
            self.render(step.args)
        except _Unavailable:
            return False
        return True

    def advance(self, steps: Sequence[PlaybookStep]) -> None:
        """Move to the next runnable step, noting the ones skipped."""
        while self.index < len(steps) and not self.runnable(steps[self.index]):
            step = steps[self.index]
            if step.when is None:
                self.notes.append(f"skipped {step.tool}: an earlier step it needs did not succeed")
            self.unavailable.add(step.tool)
            self.index += 1
        self.attempts = 0

    def complete(self, steps: Sequence[PlaybookStep], content: Mapping[str, Any]) -> None:
        step = steps[self.index]
        self.results[step.tool] = content
        if step.stop_if is not None and content.get(step.stop_if.field) in step.stop_if.values:
            self.outcome = {
                "resolution": step.stop_if.resolution,
                "summary": self.render(step.stop_if.summary, strict=False),
            }
            return
        self.index += 1
        self.advance(steps)

    def fail(self, steps: Sequence[PlaybookStep], observation: Observation) -> None:
        step = steps[self.index]
        if step.on_failure == "continue":
            self.notes.append(f"{step.tool} did not succeed ({_describe(observation)})")
            self.unavailable.add(step.tool)
            self.index += 1
            self.advance(steps)
            return
        self.outcome = _fallback(steps[self.index :], observation)


class PlaybookPlanner:
    """Deterministic intent playbooks, optionally with a naive agent's seeded mistakes.

    Args:
        spec: the version's planner settings (``playbooks``, ``seed``, ``noise``).

    Raises:
        VersionSpecError: a playbook entry is malformed.
    """

    def __init__(self, spec: PlannerSpec) -> None:
        self.spec = spec
        self.playbooks = tuple(Playbook.parse(doc, i) for i, doc in enumerate(spec.playbooks))

    def playbook_for(self, task: Mapping[str, Any]) -> Playbook | None:
        """The first playbook whose match rule the task satisfies."""
        return next((p for p in self.playbooks if p.matches(task)), None)

    def propose(self, context: RunContext) -> Proposal:
        """The next step of the task's playbook, or its final answer."""
        playbook = self.playbook_for(context.task)
        if playbook is None:
            intent = context.task.get("intent")
            return Proposal.final(
                "No playbook matches this task.",
                {
                    "resolution": "escalated",
                    "summary": f"No playbook handles intent {intent!r}; a person should take it.",
                },
            )
        progress = _replay(playbook, context)
        steps = playbook.steps
        if progress.outcome is not None:
            return Proposal.final("The playbook cannot continue.", _with_notes(progress))
        if progress.pending is not None:
            call = progress.pending
            return Proposal.failed(
                f"call {call.call_id} ({call.tool}) is still waiting for a review; plan again "
                "once it is decided"
            )
        if progress.index >= len(steps):
            progress.outcome = progress.render(dict(playbook.final), strict=False)
            return Proposal.final("Every step of the playbook is done.", _with_notes(progress))
        step = steps[progress.index]
        if progress.attempts >= MAX_ATTEMPTS_PER_STEP:
            progress.outcome = {
                "resolution": "escalated",
                "summary": f"{step.tool} did not succeed after {progress.attempts} attempts; a "
                "person should take over.",
            }
            return Proposal.final("Too many failed attempts.", _with_notes(progress))
        args: dict[str, Any] = progress.render(dict(step.args))
        tool = step.tool
        reasoning = (
            progress.render(step.reasoning, strict=False)
            if step.reasoning
            else (f"Step {progress.index + 1} of {len(steps)}: {tool}.")
        )
        if progress.attempts == 0:
            injected = _inject(playbook, context, tool, args)
            if injected:
                reasoning += f" The message asks for {injected}, so I will do that."
            else:
                tool, args = self._mistake(context, tool, args)
        call = ProposedCall(call_id=f"t{context.turn}c0", tool=tool, args=args)
        return Proposal.tool_calls(reasoning, call)

    def _mistake(
        self, context: RunContext, tool: str, args: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """With probability ``noise``, the step's call with one realistic mistake in it."""
        if self.spec.noise <= 0:
            return tool, args
        rng = random.Random(f"{self.spec.seed}:{context.run_id}:{context.turn}")  # noqa: S311
        if rng.random() >= self.spec.noise:
            return tool, args
        numeric = [k for k, v in args.items() if _is_number(v) and v > 0]
        in_scope = {t.name for t in context.tools}
        outside = [name for name in OUT_OF_SCOPE_TOOLS if name not in in_scope]
        kinds = [
            k
            for k, ok in (
                ("inflate", bool(numeric)),
                ("out_of_scope", bool(outside)),
                ("malformed", bool(args)),
                ("missing", bool(args)),
            )
            if ok
        ]
        if not kinds:
            return tool, args
        kind = rng.choice(kinds)
        wrong = dict(args)
        if kind == "inflate":
            name = numeric[0]
            wrong[name] = round(args[name] * rng.choice((10, 100)), 2)
        elif kind == "out_of_scope":
            tool = rng.choice(outside)
        elif kind == "malformed":
            name = rng.choice(sorted(args))
            value = args[name]
            wrong[name] = f"{value} USD" if _is_number(value) else [value]
        else:
            del wrong[rng.choice(sorted(args))]
        return tool, wrong


def _replay(playbook: Playbook, context: RunContext) -> _Progress:
    steps = playbook.steps
    progress = _Progress(task=context.task)
    progress.advance(steps)
    latest = {o.call_id: o for o in context.observations()}
    for turn in context.history:
        for call in turn.proposal.calls:
            if progress.outcome is not None or progress.index >= len(steps):
                return progress
            observation = latest.get(call.call_id)
            if observation is None or observation.status == "pending_review":
                progress.pending = call
                continue
            progress.pending = None
            step = steps[progress.index]
            if observation.status == "ok" and call.tool == step.tool:
                progress.complete(steps, observation.content)
            elif observation.status == "ok" or not _as_intended(progress, step, call):
                progress.attempts += 1
            else:
                progress.fail(steps, observation)
    return progress


def _as_intended(progress: _Progress, step: PlaybookStep, call: ProposedCall) -> bool:
    return call.tool == step.tool and dict(call.args) == progress.render(dict(step.args))


def _inject(playbook: Playbook, context: RunContext, tool: str, args: dict[str, Any]) -> str:
    """Apply the message's instructions to ``args`` in place; describe what changed."""
    message = context.task.get("message")
    if not isinstance(message, str) or not message:
        return ""
    spec = next((t for t in context.tools if t.name == tool), None)
    accepted = set(spec.args_schema.get("properties", {})) if spec is not None else set(args)
    changed = []
    for name, pattern in playbook.injectable.items():
        match = pattern.search(message)
        if name not in accepted or match is None:
            continue
        value: Any = match.group(1)
        if _is_number(args.get(name)):
            # Text that is no number is passed on as it is; argument validation catches it.
            with contextlib.suppress(ValueError):
                value = float(value.replace(",", ""))
        if args.get(name) != value:
            args[name] = value
            changed.append(f"{name}={value!r}")
    return ", ".join(changed)


def _fallback(remaining: Sequence[PlaybookStep], observation: Observation) -> dict[str, Any]:
    error_class = observation.error_class
    if error_class is None and observation.status in ("denied", "rejected"):
        error_class = (
            ErrorClass.POLICY_DENIED
            if observation.status == "denied"
            else ErrorClass.HUMAN_REJECTED
        )
    if error_class is None:
        error_class = (
            ErrorClass.REVIEW_EXPIRED if observation.status == "expired" else ErrorClass.TOOL_ERROR
        )
    declined = error_class in _DECLINING
    skipped = [s.tool for s in remaining[1:]]
    lead = "Declined" if declined else "Handed to a person"
    summary = f"{lead}: {_describe(observation).rstrip('.')}."
    if skipped:
        summary += f" Not done: {', '.join(skipped)}."
    return {
        "resolution": "declined" if declined else "escalated",
        "summary": summary,
        "failed_step": observation.tool,
        "error_class": error_class.value,
    }


def _describe(observation: Observation) -> str:
    text = observation.as_text()
    rule = observation.content.get("rule_id")
    return f"{text} (rule {rule})" if rule and str(rule) not in text else text


def _with_notes(progress: _Progress) -> dict[str, Any]:
    answer = dict(progress.outcome or {})
    if progress.notes:
        answer["notes"] = list(progress.notes)
    return answer


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_text(value: Any) -> str:
    if value is _MISSING or value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
