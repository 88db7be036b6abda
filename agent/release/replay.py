"""Policy replay: what a candidate policy would have decided on the calls an agent proposed.

Every policy decision records what it read (see ``agent/runtime/session.py``'s guardrail step):
the arguments, the task fields, the run's figures, the facts and counters. A replay evaluates the
candidate's compiled policy on those recorded variables, in the order the calls were proposed,
purely from stored rows: no tool, fact provider or model is called. A recorded decision the
candidate cannot be evaluated on (it reads a fact or counter the original rules did not, or the
decision predates decision records) is reported as undecidable, with the reason, never guessed.

The report says which decisions flip, grouped by (from, to, rule, tool, version) with runs as
examples; what it would mean for the review queue at the reviewers' observed pace; which past
human decisions it contradicts; and which executed calls it would now deny. It is saved, and
attached to the candidate version when the candidate is one.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from agent.actors import READ_ROLES, Actor, require
from agent.errors import InvalidInput, NotFound
from agent.mediation.policy import CompiledPolicy
from agent.mediation.variables import CallTally, RunFigures, decision_variables
from agent.platform import Platform
from agent.versions.document import parse_version
from storage.audit import append_event
from storage.engine import read_session, write_session
from storage.enums import ReviewStatus, Role, StepKind, StepStatus, ToolCallStatus
from storage.models import (
    Agent,
    AgentVersion,
    PolicyReplay,
    Review,
    Run,
    Step,
    Task,
    ToolCall,
)
from storage.tables import AGENT_VERSIONS, RUNS, STEPS
from storage.types import utcnow

REPLAY_ROLES = frozenset({Role.ENGINEER, Role.MANAGER})
"""Who runs a replay (it reads every decision of an agent, and saves a report)."""
MAX_WINDOW = timedelta(days=365)
EXAMPLES = 5
_APPROVED = (ReviewStatus.APPROVED, ReviewStatus.EDITED, ReviewStatus.OVERRIDDEN)


@dataclass(frozen=True)
class Flip:
    """Decisions that change the same way: from one effect to another, by one rule."""

    from_effect: str
    to_effect: str
    rule_id: str | None
    tool: str
    version: int
    count: int
    runs: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "runs": list(self.runs)}


@dataclass(frozen=True)
class Contradiction:
    """A person's decision the candidate would go against."""

    run_id: int
    review_id: int
    tool: str
    person: str
    decided: str
    candidate: str
    rule_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ReplayReport:
    """What a candidate policy would have decided on an agent's recorded decisions."""

    agent: str
    candidate: str
    candidate_version: int | None
    candidate_policy_hash: str
    since: datetime
    until: datetime
    decisions: int
    replayed: int
    unchanged: int
    flips: tuple[Flip, ...]
    undecidable: dict[str, int]
    contradictions: tuple[Contradiction, ...]
    executed_now_denied: tuple[dict[str, Any], ...]
    queue: dict[str, Any]
    id: int | None = None
    created_by: str = ""
    created_at: datetime | None = None
    by_effect: dict[str, dict[str, int]] = field(default_factory=dict)
    refused_before_policy: int = 0

    @property
    def flipped(self) -> int:
        return sum(f.count for f in self.flips)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "candidate": self.candidate,
            "candidate_version": self.candidate_version,
            "candidate_policy_hash": self.candidate_policy_hash,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "decisions": self.decisions,
            "replayed": self.replayed,
            "unchanged": self.unchanged,
            "flipped": self.flipped,
            "flips": [f.as_dict() for f in self.flips],
            "undecidable": dict(self.undecidable),
            "contradictions": [c.as_dict() for c in self.contradictions],
            "executed_now_denied": list(self.executed_now_denied),
            "queue": dict(self.queue),
            "by_effect": {k: dict(v) for k, v in self.by_effect.items()},
            "refused_before_policy": self.refused_before_policy,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ReplayReport:
        return cls(
            agent=doc["agent"],
            candidate=doc["candidate"],
            candidate_version=doc.get("candidate_version"),
            candidate_policy_hash=doc["candidate_policy_hash"],
            since=datetime.fromisoformat(doc["since"]),
            until=datetime.fromisoformat(doc["until"]),
            decisions=int(doc["decisions"]),
            replayed=int(doc["replayed"]),
            unchanged=int(doc["unchanged"]),
            flips=tuple(Flip(**{**f, "runs": tuple(f["runs"])}) for f in doc.get("flips", ())),
            undecidable=dict(doc.get("undecidable", {})),
            contradictions=tuple(Contradiction(**c) for c in doc.get("contradictions", ())),
            executed_now_denied=tuple(doc.get("executed_now_denied", ())),
            queue=dict(doc.get("queue", {})),
            id=doc.get("id"),
            created_by=str(doc.get("created_by", "")),
            created_at=(
                datetime.fromisoformat(doc["created_at"]) if doc.get("created_at") else None
            ),
            by_effect={k: dict(v) for k, v in doc.get("by_effect", {}).items()},
            refused_before_policy=int(doc.get("refused_before_policy", 0)),
        )


def replay_policy(
    platform: Platform,
    actor: Actor,
    agent_name: str,
    *,
    candidate_version: int | None = None,
    candidate_yaml: str | None = None,
    since: timedelta = timedelta(days=30),
    now: datetime | None = None,
) -> ReplayReport:
    """Replay a candidate's policy (a stored version's, or a version document's) on the agent's
    production decisions of the last ``since``, save the report and return it.

    Raises:
        Forbidden: the actor is neither an engineer nor a manager.
        NotFound: no such agent or version.
        InvalidInput: not exactly one candidate, or a window that is not positive or is longer
            than a year.
        VersionSpecError: the candidate document is not a valid version (line named).
    """
    require(actor, REPLAY_ROLES, f"replay a policy on {agent_name!r}")
    if (candidate_version is None) == (candidate_yaml is None):
        raise InvalidInput("name one candidate: a version number or a version document.")
    if not timedelta(0) < since <= MAX_WINDOW:
        raise InvalidInput("the replay window is more than nothing and at most 365 days.")
    until = now or utcnow()
    start = until - since
    with read_session(platform.engine) as session:
        agent = _agent(session, agent_name)
        assert agent.id is not None
        if candidate_version is not None:
            version_row = session.exec(
                select(AgentVersion)
                .where(col(AgentVersion.agent_id) == agent.id)
                .where(col(AgentVersion.number) == candidate_version)
            ).first()
            if version_row is None or version_row.id is None:
                raise NotFound(f"agent {agent_name!r} has no version {candidate_version}.")
            policy = platform.versions.get(version_row.id).policy
            label = f"version {candidate_version}"
            version_id: int | None = version_row.id
        else:
            parsed = parse_version(str(candidate_yaml), registry=platform.registry)
            policy = CompiledPolicy(parsed.spec.policy)
            label = f"document (policy {policy.hash[:12]})"
            version_id = None
        report = _replay(session, agent, policy, label, candidate_version, start, until)
    with write_session(platform.engine) as session:
        row = PolicyReplay(
            agent_id=agent.id,
            version_id=version_id,
            candidate=label,
            candidate_policy_hash=policy.hash,
            since=start,
            until=until,
            flipped=report.flipped,
            report=report.as_dict(),
            created_by=actor.name,
        )
        session.add(row)
        session.flush()
        append_event(
            session,
            actor=actor.name,
            action="policy.replay",
            target_type="agent",
            target_id=agent.id,
            payload={
                "replay_id": row.id,
                "candidate": label,
                "policy_hash": policy.hash,
                "decisions": report.decisions,
                "flipped": report.flipped,
            },
        )
        saved_id, created_at = row.id, row.created_at
    return ReplayReport(
        **{
            **report.__dict__,
            "id": saved_id,
            "created_by": actor.name,
            "created_at": created_at,
        }
    )


def list_replays(
    platform: Platform, actor: Actor, agent_name: str, *, version: int | None = None
) -> tuple[ReplayReport, ...]:
    """Saved replays of an agent (of one candidate version, if given), newest first."""
    require(actor, READ_ROLES, f"read the policy replays of {agent_name!r}")
    with read_session(platform.engine) as session:
        agent = _agent(session, agent_name)
        query = select(PolicyReplay).where(col(PolicyReplay.agent_id) == agent.id)
        if version is not None:
            version_id = session.exec(
                select(AgentVersion.id)
                .where(col(AgentVersion.agent_id) == agent.id)
                .where(col(AgentVersion.number) == version)
            ).first()
            if version_id is None:
                raise NotFound(f"agent {agent_name!r} has no version {version}.")
            query = query.where(col(PolicyReplay.version_id) == version_id)
        rows = session.exec(query.order_by(col(PolicyReplay.id).desc()).limit(50)).all()
    return tuple(
        ReplayReport.from_dict(
            {
                **row.report,
                "id": row.id,
                "created_by": row.created_by,
                "created_at": row.created_at.isoformat(),
            }
        )
        for row in rows
    )


@dataclass
class _Decision:
    """One recorded policy decision: the first on a proposed call."""

    run_id: int
    call_id: str
    tool: str
    version: int
    recorded: str
    record: Mapping[str, Any] | None
    seq: int


def _replay(  # noqa: PLR0917 - internal, the replay's parts in order
    session: Session,
    agent: Agent,
    policy: CompiledPolicy,
    label: str,
    candidate_version: int | None,
    start: datetime,
    until: datetime,
) -> ReplayReport:
    decisions, before_policy = _recorded_decisions(session, agent, start, until)
    history = _History(session, agent)
    reviews = _people(session, {d.run_id for d in decisions})
    executed = _executed(session, {d.run_id for d in decisions})
    undecidable: Counter[str] = Counter()
    flips: dict[tuple[str, str, str | None, str, int], list[int]] = defaultdict(list)
    by_effect: dict[str, Counter[str]] = {"recorded": Counter(), "candidate": Counter()}
    contradictions: list[Contradiction] = []
    now_denied: list[dict[str, Any]] = []
    unchanged = 0
    for decision in decisions:
        outcome = _decide(policy, decision, history)
        if isinstance(outcome, str):
            undecidable[outcome] += 1
            continue
        effect, rule_id = outcome
        by_effect["recorded"][decision.recorded] += 1
        by_effect["candidate"][effect] += 1
        if effect == decision.recorded:
            unchanged += 1
        else:
            key = (decision.recorded, effect, rule_id, decision.tool, decision.version)
            flips[key].append(decision.run_id)
        review = reviews.get((decision.run_id, decision.call_id))
        if review is not None and review.decided_by:
            person_allowed = review.status in _APPROVED
            if (person_allowed and effect == "deny") or (
                review.status is ReviewStatus.REJECTED and effect == "allow"
            ):
                contradictions.append(
                    Contradiction(
                        run_id=decision.run_id,
                        review_id=review.id or 0,
                        tool=decision.tool,
                        person=review.decided_by,
                        decided=review.status.value,
                        candidate=effect,
                        rule_id=rule_id,
                    )
                )
        if effect == "deny" and (decision.run_id, decision.call_id) in executed:
            now_denied.append(
                {
                    "run_id": decision.run_id,
                    "call_id": decision.call_id,
                    "tool": decision.tool,
                    "rule_id": rule_id,
                }
            )
    days = max((until - start).total_seconds() / 86400.0, 1 / 24)
    return ReplayReport(
        agent=agent.name,
        candidate=label,
        candidate_version=candidate_version,
        candidate_policy_hash=policy.hash,
        since=start,
        until=until,
        decisions=len(decisions),
        replayed=len(decisions) - sum(undecidable.values()),
        unchanged=unchanged,
        flips=tuple(
            sorted(
                (
                    Flip(
                        from_effect=key[0],
                        to_effect=key[1],
                        rule_id=key[2],
                        tool=key[3],
                        version=key[4],
                        count=len(runs),
                        runs=tuple(sorted(set(runs)))[:EXAMPLES],
                    )
                    for key, runs in flips.items()
                ),
                key=lambda f: (-f.count, f.tool, f.from_effect, f.to_effect),
            )
        ),
        undecidable=dict(undecidable),
        contradictions=tuple(contradictions),
        executed_now_denied=tuple(now_denied),
        queue=_queue(session, agent, by_effect, start, until, days),
        by_effect={k: dict(v) for k, v in by_effect.items()},
        refused_before_policy=before_policy,
    )


def _decide(
    policy: CompiledPolicy, decision: _Decision, history: _History
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


class _History:
    """What stored rows say about a decision beyond its record, read once per run."""

    def __init__(self, session: Session, agent: Agent) -> None:
        self.session = session
        self.agent = agent
        self._tasks: dict[int, dict[str, Any]] = {}
        self._steps: dict[int, list[Step]] = {}

    def rebuild(self, variable: str, decision: _Decision) -> dict[str, Any]:
        if variable == "args":
            return self._args(decision)
        if variable == "agent":
            return {"name": self.agent.name, "version": decision.version}
        if variable == "task":
            return self._task(decision.run_id)
        return self._run(decision)

    def _args(self, decision: _Decision) -> dict[str, Any]:
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

    def _run(self, decision: _Decision) -> dict[str, Any]:
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


def _recorded_decisions(
    session: Session, agent: Agent, start: datetime, until: datetime
) -> tuple[list[_Decision], int]:
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
            _Decision(
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


def _people(session: Session, run_ids: set[int]) -> dict[tuple[int, str], Review]:
    if not run_ids:
        return {}
    reviews = session.exec(
        select(Review)
        .where(col(Review.run_id).in_(run_ids))
        .where(col(Review.decided_by).is_not(None))
        .order_by(col(Review.id))
    ).all()
    return {(r.run_id, str(r.call_id)): r for r in reviews if r.call_id is not None}


def _executed(session: Session, run_ids: set[int]) -> set[tuple[int, str]]:
    if not run_ids:
        return set()
    rows = session.exec(
        select(ToolCall.run_id, ToolCall.call_id)
        .where(col(ToolCall.run_id).in_(run_ids))
        .where(col(ToolCall.status) == ToolCallStatus.SUCCEEDED)
    ).all()
    return {(run_id, str(call_id)) for run_id, call_id in rows}


def _queue(  # noqa: PLR0917 - internal
    session: Session,
    agent: Agent,
    by_effect: Mapping[str, Counter[str]],
    start: datetime,
    until: datetime,
    days: float,
) -> dict[str, Any]:
    """Reviews per day today and under the candidate, against the pace people decided at."""
    decided = session.exec(
        select(Review.created_at, Review.decided_at)
        .join(Run, col(Run.id) == col(Review.run_id))
        .where(col(Review.agent_id) == agent.id)
        .where(col(Run.eval_run_id).is_(None))
        .where(col(Review.decided_at).is_not(None))
        .where(col(Review.decided_by).is_not(None))
        .where(col(Review.created_at) >= start)
        .where(col(Review.created_at) <= until)
    ).all()
    waits = [
        (decided_at - created_at).total_seconds() / 60.0
        for created_at, decided_at in decided
        if decided_at is not None
    ]
    # A person sees an escalation, and a deny someone may override, as a review.
    today = by_effect["recorded"]["escalate"] / days
    projected = by_effect["candidate"]["escalate"] / days
    pace = len(decided) / days
    return {
        "window_days": round(days, 2),
        "escalations_per_day": round(today, 2),
        "projected_escalations_per_day": round(projected, 2),
        "decisions_per_day": round(pace, 2),
        "median_minutes_to_decide": round(statistics.median(waits), 1) if waits else None,
        "projected_load": round(projected / pace, 2) if pace else None,
    }


def _agent(session: Session, name: str) -> Agent:
    agent = session.exec(select(Agent).where(col(Agent.name) == name)).first()
    if agent is None:
        raise NotFound(f"there is no agent named {name!r}.")
    return agent
