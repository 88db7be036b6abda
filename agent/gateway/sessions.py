"""The gateway's side of mediation: which run a client's calls belong to, and what it is told.

Each client (token) session gets a task (source ``gateway``, submitted by the token's user) and
a run on the agent's version active when the session began; every call is mediated on that run
by ``agent.runtime.external`` exactly as a planned call, so it appears in the console's runs,
queue and trace. An escalated call answers "waiting for approval" with the review's id; the
client polls with ``steward_review_status`` or by repeating the same call with the same
arguments, and gets the outcome once a person decided and the call executed (once).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from agent.binding import args_hash
from agent.calls import Observation
from agent.errors import Forbidden, InvalidInput, NotFound
from agent.gateway.tokens import GatewayIdentity
from agent.platform import Platform
from agent.runtime.claims import EXTERNAL_SOURCE
from agent.runtime.external import ExternalOutcome, ExternalRuns
from agent.tools.base import ToolSpec
from storage.audit import append_event
from storage.engine import write_connection
from storage.enums import SideEffect, TaskStatus
from storage.tables import AGENTS, REVIEWS, RUNS, TASKS
from storage.types import utcnow

REVIEW_STATUS_TOOL = "steward_review_status"
REVIEW_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["review_id"],
    "properties": {"review_id": {"type": "integer", "minimum": 1}},
    "additionalProperties": False,
}


@dataclass(frozen=True)
class GatewayAnswer:
    """What the client receives for one call: a JSON object, and whether it is an error."""

    content: dict[str, Any]
    is_error: bool = False

    def text(self) -> str:
        return json.dumps(self.content, sort_keys=True, default=str)


@dataclass
class _Session:
    run_id: int
    task_id: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Escalated calls whose outcome the client has not received yet, by (tool, args hash).
    waiting: dict[tuple[str, str], str] = field(default_factory=dict)


class GatewaySessions:
    """Every client session of one gateway process, for one agent."""

    def __init__(self, platform: Platform, agent_name: str, *, owner: str) -> None:
        self.platform = platform
        self.agent_name = agent_name
        self.runs = ExternalRuns(platform, owner=owner)
        self._lock = threading.Lock()
        self._sessions: dict[tuple[int, str], _Session] = {}

    def tools(self) -> list[ToolSpec]:
        """The active version's tools, as a client sees them.

        Raises:
            InvalidInput: the agent has no active version.
        """
        return list(self.platform.versions.get(self._active_version()[1]).tool_specs.values())

    def call(
        self, identity: GatewayIdentity, session_key: str, tool: str, args: Mapping[str, Any]
    ) -> GatewayAnswer:
        """Mediate one call of the client, or answer a poll of ``steward_review_status``."""
        if tool == REVIEW_STATUS_TOOL:
            return self._review_status(identity, args)
        session = self._session(identity, session_key)
        key = (tool, args_hash(dict(args)))
        with session.lock:
            call_id = session.waiting.get(key)
            if call_id is not None:
                outcome = self.runs.outcome(session.run_id, call_id)
            else:
                outcome = self.runs.call(
                    session.run_id, tool, args, proposer=f"gateway:{identity.actor.name}"
                )
            if outcome.observation is None or outcome.observation.status == "pending_review":
                session.waiting[key] = outcome.call_id
            else:
                session.waiting.pop(key, None)
            if outcome.run_status.is_terminal:
                # Its budgets are spent: the client's next call starts a new run.
                self._forget(identity, session_key, session)
        return _answer(outcome)

    def close(self) -> None:
        """End every open run of this process's clients (the gateway is stopping)."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            with session.lock:
                self.runs.close_run(session.run_id, message="the gateway stopped")

    def _review_status(self, identity: GatewayIdentity, args: Mapping[str, Any]) -> GatewayAnswer:
        review_id = args.get("review_id")
        if not isinstance(review_id, int) or isinstance(review_id, bool):
            return GatewayAnswer({"message": "review_id must be an integer"}, is_error=True)
        with self.platform.engine.connect() as connection:
            found = connection.execute(
                sa.select(REVIEWS.c.run_id, REVIEWS.c.call_id, TASKS.c.submitted_by)
                .join(RUNS, RUNS.c.id == REVIEWS.c.run_id)
                .join(TASKS, TASKS.c.id == RUNS.c.task_id)
                .where(REVIEWS.c.id == review_id)
                .where(TASKS.c.source == EXTERNAL_SOURCE)
                .where(TASKS.c.agent_id == identity.agent_id)
            ).first()
        if found is None or found.submitted_by != identity.actor.name:
            return GatewayAnswer(
                {"message": f"no review {review_id} of your calls to {self.agent_name}"},
                is_error=True,
            )
        outcome = self.runs.outcome(found.run_id, found.call_id)
        with self._lock:
            for session in self._sessions.values():
                if session.run_id == found.run_id and outcome.observation is not None:
                    for key, call_id in list(session.waiting.items()):
                        if call_id == found.call_id:
                            del session.waiting[key]
        return _answer(outcome)

    def _session(self, identity: GatewayIdentity, session_key: str) -> _Session:
        key = (identity.token_id, session_key)
        with self._lock:
            found = self._sessions.get(key)
            if found is not None:
                return found
            agent_id, version_id = self._active_version()
            task_id = self._open_task(identity, agent_id)
            run_id = self.runs.open_run(task_id, agent_id, version_id)
            session = _Session(run_id=run_id, task_id=task_id)
            self._sessions[key] = session
            return session

    def _forget(self, identity: GatewayIdentity, session_key: str, session: _Session) -> None:
        with self._lock:
            if self._sessions.get((identity.token_id, session_key)) is session:
                del self._sessions[(identity.token_id, session_key)]

    def _active_version(self) -> tuple[int, int]:
        with self.platform.engine.connect() as connection:
            row = connection.execute(
                sa.select(AGENTS.c.id, AGENTS.c.active_version_id).where(
                    AGENTS.c.name == self.agent_name
                )
            ).first()
        if row is None:
            raise NotFound(f"no agent named {self.agent_name!r}.")
        if row.active_version_id is None:
            raise InvalidInput(f"{self.agent_name} has no active version to serve.")
        return int(row.id), int(row.active_version_id)

    def _open_task(self, identity: GatewayIdentity, agent_id: int) -> int:
        """The session's task, recorded as submitted by the token's user (never queued: no
        worker runs it)."""
        if identity.agent_id != agent_id:
            raise Forbidden(f"this token is not for {self.agent_name}.")
        now = utcnow()
        with write_connection(self.platform.engine) as connection:
            task_id: int = connection.execute(
                sa.insert(TASKS).returning(TASKS.c.id),
                {
                    "agent_id": agent_id,
                    "input": {
                        "gateway": {"client": identity.actor.name, "token": identity.token_id}
                    },
                    "status": TaskStatus.RUNNING,
                    "priority": 0,
                    "submitted_by": identity.actor.name,
                    "source": EXTERNAL_SOURCE,
                    "created_at": now,
                    "updated_at": now,
                },
            ).scalar_one()
            append_event(
                connection,
                actor=identity.actor.name,
                action="task.submit",
                target_type="task",
                target_id=task_id,
                payload={"agent": self.agent_name, "source": EXTERNAL_SOURCE},
            )
        return task_id


def _answer(outcome: ExternalOutcome) -> GatewayAnswer:
    observation = outcome.observation
    if observation is None or observation.status == "pending_review":
        return GatewayAnswer(
            {
                "status": "waiting_for_approval",
                "review_id": outcome.review_id,
                "message": (
                    "a person must approve this call first; poll steward_review_status with "
                    "this review_id, or repeat the same call with the same arguments"
                ),
            }
        )
    if observation.status == "ok":
        return GatewayAnswer(dict(observation.content))
    return GatewayAnswer(_refusal(observation, outcome.review_id), is_error=True)


def _refusal(observation: Observation, review_id: int | None) -> dict[str, Any]:
    content = dict(observation.content)
    message = content.get("message") or content.get("reason") or observation.status
    refusal: dict[str, Any] = {
        "status": observation.status,
        "error_class": observation.error_class.value if observation.error_class else None,
        "message": str(message),
    }
    if review_id is not None:
        refusal["review_id"] = review_id
    return refusal


def annotations_of(spec: ToolSpec) -> dict[str, bool]:
    """MCP annotation hints for a tool, from its governance."""
    return {
        "read_only_hint": spec.side_effect is SideEffect.READ,
        "destructive_hint": spec.side_effect is SideEffect.IRREVERSIBLE,
        "idempotent_hint": spec.repeatable,
    }
