"""The chat planner: any OpenAI-compatible chat-completions endpoint with tool calling proposes.

OpenAI, Azure behind a gateway, Ollama, vLLM, llama.cpp's server and LiteLLM all speak the
protocol. The model only proposes: its tool calls become proposed calls that the mediation layer
decides one by one, exactly as it decides any other planner's, and what came of each (a result,
"denied by rule X: reason", "waiting for human approval", "rejected by olga: reason", an error)
goes back to the model as a tool message on the next turn. The planner holds no state: each turn
it rebuilds the conversation from the run's history (``agent.planning.chat_protocol``) and sends
it (``agent.planning.chat_client``).

It never raises for model trouble. An endpoint that cannot be reached, answers with errors
after its retries, times out, or replies with something unusable (a malformed body, an empty
answer, a refusal, prose instead of a tool call) yields ``Proposal.failed``, which the runtime
records as a ``planner_error`` and counts against ``max_consecutive_failures``: a model that
keeps failing ends its run as escalated, never hung.

The runtime passes what the planner needs from the version in ``RunContext.planner_config``:
``output_schema`` (the parameters of ``final_answer``), ``model_timeout_s``, ``time_left_s``
(before the run's deadline) and ``retries``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx

from agent.errors import VersionSpecError
from agent.planning.base import Proposal, RunContext
from agent.planning.chat_client import Attempt, ChatEndpoint, ModelCallFailed, RetrySettings
from agent.planning.chat_protocol import FINAL_ANSWER, ToolNames, build_request, parse_reply
from agent.spec import PlannerSpec

log = logging.getLogger(__name__)

_DEFAULT_TIMEOUT_S = 60.0


class ChatPlanner:
    """Proposes what a chat model answers; see the module docstring.

    Args:
        spec: the version's ``planner`` section (``kind: chat``).
        client: the pooled HTTP client model requests share (the platform's).
        environ: where the API key is read from; default ``os.environ``.

    Raises:
        VersionSpecError: ``model`` or ``base_url`` is missing.
    """

    def __init__(
        self,
        spec: PlannerSpec,
        *,
        client: httpx.Client,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not spec.model or not spec.base_url:
            raise VersionSpecError("a chat planner needs planner.model and planner.base_url")
        self.spec = spec
        self.endpoint = ChatEndpoint(
            spec.base_url, spec.api_key_env, client=client, environ=environ
        )

    def propose(self, context: RunContext) -> Proposal:
        names = ToolNames.for_tools(tool.name for tool in context.tools)
        if FINAL_ANSWER in names.to_wire:
            return Proposal.failed(
                f"the version has a tool named {FINAL_ANSWER!r}, a name the chat planner keeps "
                "for the model's answer; rename the tool"
            )
        config = context.planner_config
        time_left_s = float(config.get("time_left_s", _DEFAULT_TIMEOUT_S))
        timeout_s = min(float(config.get("model_timeout_s", _DEFAULT_TIMEOUT_S)), time_left_s)
        request = build_request(self.spec, context, names)
        try:
            reply = self.endpoint.complete(
                request,
                timeout_s=max(timeout_s, 0.001),
                time_left_s=time_left_s,
                retries=RetrySettings.from_mapping(config.get("retries")),
            )
        except ModelCallFailed as exc:
            log.warning("run %s: the model request failed: %s", context.run_id, exc)
            return replace(Proposal.failed(str(exc)), telemetry=_telemetry(exc.attempts, None))
        proposal = parse_reply(reply.body, turn=context.turn, names=names, model=self.spec.model)
        log.info(
            "run %s turn %d: %s answered in %.0f ms (%s)",
            context.run_id,
            context.turn + 1,
            self.spec.model,
            reply.attempts[-1].latency_ms if reply.attempts else 0.0,
            "error: " + proposal.error if proposal.error else f"{len(proposal.calls)} call(s)",
        )
        return replace(proposal, telemetry=_telemetry(reply.attempts, reply.body))


def _telemetry(attempts: tuple[Attempt, ...], body: Any) -> dict[str, Any]:
    """What the proposal step records about the exchange: latency, attempts, finish reason."""
    telemetry: dict[str, Any] = {
        "model_latency_ms": round(attempts[-1].latency_ms, 1) if attempts else None,
        "model_attempts": len(attempts),
        "model_http": [a.outcome for a in attempts],
    }
    if isinstance(body, Mapping):
        choices = body.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        if isinstance(first, Mapping) and isinstance(first.get("finish_reason"), str):
            telemetry["finish_reason"] = first["finish_reason"]
        if isinstance(body.get("id"), str):
            telemetry["response_id"] = body["id"][:128]
    return telemetry
