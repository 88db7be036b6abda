"""Record and replay: a run's model exchanges as a scripted version that reproduces the run.

Every proposal a planner made is in the run's trace (one proposal step per turn: reasoning,
calls with their ids and arguments, final answer or planner error, token counts). Exported as
the ``script`` of a ``scripted`` planner, over an unchanged copy of the run's version (tools,
policy, budgets, output contract), it replays the run without the model: the same proposals
meet the same governance, so an incident can be reproduced, debugged and turned into a test.

What a replay cannot reproduce: the world. Tools run again against today's systems of record,
people decide its reviews again, and arguments the trace redacted (fields named like secrets)
are replayed as ``[redacted]``. Token counts of turns that failed are not replayed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from sqlmodel import col, select

from agent.actors import READ_ROLES, Actor, require
from agent.errors import NotFound
from agent.platform import Platform
from storage.engine import read_session
from storage.enums import StepKind
from storage.models import Agent, AgentVersion, Run, Step, Task


@dataclass(frozen=True)
class ReplayScript:
    """A version document that replays one run, and what is needed to run it again.

    Attributes:
        run_id: the run it replays.
        agent: that run's agent.
        version: the number of that run's version.
        task: the run's task input, to submit again.
        document: the version document (``planner.kind: scripted``).
        yaml_text: the document as YAML with a header saying how to use it.
    """

    run_id: int
    agent: str
    version: int
    task: dict[str, Any]
    document: dict[str, Any]
    yaml_text: str

    @property
    def turns(self) -> int:
        return len(self.document["planner"]["script"])


def script_from_steps(steps: Sequence[Step]) -> list[dict[str, Any]]:
    """One scripted-planner entry per proposal step, in trace order (format:
    ``agent.planning.scripted``)."""
    script = []
    for step in sorted(steps, key=lambda s: s.seq):
        if step.kind is not StepKind.PROPOSAL or step.output is None:
            continue
        proposal = step.output
        entry: dict[str, Any] = {}
        if proposal.get("error") is not None:
            entry["error"] = proposal["error"]
        else:
            if proposal.get("reasoning"):
                entry["reasoning"] = proposal["reasoning"]
            if proposal.get("final_answer") is not None:
                entry["final"] = proposal["final_answer"]
            else:
                entry["calls"] = [
                    {"id": call["call_id"], "tool": call["tool"], "args": call["args"]}
                    for call in proposal.get("calls", [])
                ]
            for name in ("prompt_tokens", "completion_tokens"):
                count = step.attributes.get(name)
                if isinstance(count, int) and count > 0:
                    entry[name] = count
        script.append(entry)
    return script


def answering_model(steps: Sequence[Step]) -> str | None:
    """The model that answered most of the run's turns, as the replies named it."""
    named = Counter(
        str(step.output["usage"]["model"])
        for step in steps
        if step.kind is StepKind.PROPOSAL
        and step.output is not None
        and isinstance(step.output.get("usage"), Mapping)
        and step.output["usage"].get("model")
    )
    return named.most_common(1)[0][0] if named else None


def replay_document(
    version_document: Mapping[str, Any],
    script: list[dict[str, Any]],
    *,
    run_id: int,
    model: str | None = None,
) -> dict[str, Any]:
    """``version_document`` with its planner replaced by a scripted one playing ``script``.

    The scripted planner reports its tokens under ``model`` (default: the original planner's),
    so the replay's tokens are priced as the run's were.
    """
    document: dict[str, Any] = json.loads(json.dumps(dict(version_document)))  # a deep copy
    planner = document["planner"]
    original = planner.get("kind", "?")
    document["planner"] = {"kind": "scripted", "script": script}
    if model or planner.get("model"):
        document["planner"]["model"] = model or planner["model"]
    document["description"] = (
        f"Replay of run {run_id}: the proposals its {original} planner made, turn by turn. "
        + str(version_document.get("description", ""))
    ).strip()
    return document


def export_replay(platform: Platform, actor: Actor, run_id: int) -> ReplayScript:
    """The scripted version that replays run ``run_id``.

    Raises:
        Forbidden: ``actor`` may not read runs.
        NotFound: the run does not exist.
    """
    require(actor, READ_ROLES, f"export run {run_id}")
    with read_session(platform.engine) as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFound(f"run {run_id} does not exist.")
        version = session.get(AgentVersion, run.version_id)
        agent = session.get(Agent, run.agent_id)
        task = session.get(Task, run.task_id)
        steps = session.exec(
            select(Step)
            .where(col(Step.run_id) == run_id)
            .where(col(Step.kind) == StepKind.PROPOSAL)
            .order_by(col(Step.seq))
        ).all()
        if version is None or agent is None:
            raise NotFound(f"the version of run {run_id} does not exist any more.")
        script = script_from_steps(steps)
        document = replay_document(
            version.spec, script, run_id=run_id, model=answering_model(steps)
        )
        agent_name, number = agent.name, version.number
        task_input = dict(task.input) if task is not None else {}
    quoted_task = json.dumps(task_input, sort_keys=True).replace("'", "'\\''")
    header = (
        f"# Replay of run {run_id} (agent {agent_name}, version {number}): "
        f"{len(script)} planner turns.\n"
        "# Store it as a version, activate it, and submit the run's task again:\n"
        f"#   steward versions create {agent_name} THIS_FILE --as ENGINEER\n"
        f"#   steward versions activate {agent_name} N --as ENGINEER "
        f"--reason 'replay run {run_id}'\n"
        f"#   steward submit {agent_name} --as OPERATOR --input '{quoted_task}'\n"
    )
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return ReplayScript(
        run_id=run_id,
        agent=agent_name,
        version=number,
        task=task_input,
        document=document,
        yaml_text=header + body,
    )
