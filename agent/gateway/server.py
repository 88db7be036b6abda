"""The gateway's MCP server: the active version's tools over streamable HTTP, behind tokens.

Built on the SDK's low-level ``Server`` (the tools and their schemas come from the version,
not from Python signatures) and its Starlette app with bearer authentication: the SDK refuses
a request without a valid token (HTTP 401) before any handler runs, and each handler
identifies the token again, so a revoked token or a removed role stops the next call.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import anyio.to_thread
import mcp_types as types
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from starlette.applications import Starlette

from agent.actors import Actor, require
from agent.errors import ServiceError
from agent.gateway.sessions import (
    REVIEW_STATUS_SCHEMA,
    REVIEW_STATUS_TOOL,
    GatewayAnswer,
    GatewaySessions,
    annotations_of,
)
from agent.gateway.tokens import GatewayIdentity, identify
from agent.platform import Platform
from agent.tools.base import ToolSpec
from storage.enums import Role

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"


class _TokenVerifier:
    """The SDK's ``TokenVerifier`` over Steward's gateway tokens."""

    def __init__(self, platform: Platform, agent_name: str) -> None:
        self.platform = platform
        self.agent_name = agent_name

    async def verify_token(self, token: str) -> AccessToken | None:
        identity = await anyio.to_thread.run_sync(identify, self.platform, token, self.agent_name)
        if identity is None:
            return None
        return AccessToken(
            token=token,
            client_id=f"gateway-token-{identity.token_id}",
            scopes=[],
            subject=identity.actor.name,
        )


def gateway_app(
    platform: Platform, agent_name: str, *, host: str, port: int, owner: str | None = None
) -> tuple[Starlette, GatewaySessions]:
    """The ASGI app serving ``agent_name`` at ``/mcp``, and its sessions (close them when the
    app stops, so the clients' runs end)."""
    sessions = GatewaySessions(
        platform, agent_name, owner=owner or f"gateway:{socket.gethostname()}:{port}"
    )

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        specs = await anyio.to_thread.run_sync(sessions.tools)
        tools = [
            types.Tool(
                name=spec.name,
                description=spec.description,
                input_schema=dict(spec.args_schema),
                annotations=_annotations(spec),
            )
            for spec in specs
        ]
        tools.append(
            types.Tool(
                name=REVIEW_STATUS_TOOL,
                description=(
                    "The outcome of a call that waited for a person's approval: the result "
                    "once approved and executed, a refusal, or still waiting."
                ),
                input_schema=REVIEW_STATUS_SCHEMA,
                annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True),
            )
        )
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        access = get_access_token()
        if access is None:
            return _result(GatewayAnswer({"message": "no gateway token"}, is_error=True))
        identity: GatewayIdentity | None = await anyio.to_thread.run_sync(
            identify, platform, access.token, agent_name
        )
        if identity is None:
            return _result(
                GatewayAnswer({"message": "the gateway token is no longer valid"}, is_error=True)
            )
        session_key = _session_key(ctx)
        try:
            answer = await anyio.to_thread.run_sync(
                sessions.call, identity, session_key, params.name, dict(params.arguments or {})
            )
        except ServiceError as exc:
            answer = GatewayAnswer({"message": str(exc)}, is_error=True)
        return _result(answer)

    server: Server[Any] = Server(
        f"steward-{agent_name}",
        instructions=(
            f"Tools of the Steward agent {agent_name}. Every call is checked by Steward's "
            "policy; a call may wait for a person's approval (poll steward_review_status)."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    base = f"http://{host}:{port}"
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        host=host,
        auth=AuthSettings(issuer_url=base, resource_server_url=None),  # type: ignore[arg-type]
        token_verifier=_TokenVerifier(platform, agent_name),
    )
    return app, sessions


def _annotations(spec: ToolSpec) -> types.ToolAnnotations:
    hints = annotations_of(spec)
    return types.ToolAnnotations(
        read_only_hint=hints["read_only_hint"],
        destructive_hint=hints["destructive_hint"],
        idempotent_hint=hints["idempotent_hint"],
    )


def _session_key(ctx: ServerRequestContext[Any]) -> str:
    """The client's MCP session, when its transport has one (else one run per token)."""
    request = ctx.request
    headers = getattr(request, "headers", None)
    if headers is None:
        return ""
    return str(headers.get("mcp-session-id") or "")


def _result(answer: GatewayAnswer) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=answer.text())],
        structured_content=answer.content,
        is_error=answer.is_error,
    )


SERVE_ROLES = frozenset({Role.ENGINEER, Role.ADMIN})


def serve(platform: Platform, actor: Actor, agent_name: str, *, host: str, port: int) -> None:
    """Serve the gateway until interrupted; the clients' open runs end when it stops.

    Raises:
        Forbidden: the actor is neither an engineer nor an admin.
        InvalidInput: the agent has no active version.
        NotFound: no such agent.
    """
    require(actor, SERVE_ROLES, f"serve {agent_name} through the gateway")
    app, sessions = gateway_app(platform, agent_name, host=host, port=port)
    sessions.tools()  # refuse an agent with no active version before listening
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        sessions.close()
