"""Declarative HTTP tools: a version's ``http_tools`` entry turned into a callable tool.

A definition names a method and a URL template; ``{arg}`` placeholders in the URL are filled
from the call's arguments (URL-encoded), ``query`` templates become query parameters, and for
``body: args`` (the default for POST, PUT and PATCH) the arguments no template used are sent as
a JSON object. Header values may contain ``${env:NAME}``, resolved from the environment at call
time, so secrets live in the environment and never in a version document.

Secrets never leave this module: any text drawn from an environment variable is scrubbed from
exception messages, results and logs, and exceptions are raised without their httpx cause
(whose request object would still carry the headers).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from agent.errors import FenceLost, ToolError, ToolTimeout
from agent.spec import HttpToolDef
from agent.tools.base import ToolContext, ToolSpec
from storage.enums import ErrorClass

logger = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_SAFE = re.compile(r"^[\x20-\x7e\t]*$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SNIPPET = 200
REDACTED = "[redacted]"


def http_tool_spec(defn: HttpToolDef) -> ToolSpec:
    """What governance needs to know of a declarative HTTP tool (no client needed to read it)."""
    return ToolSpec(
        name=defn.name,
        description=defn.description or f"{defn.method.upper()} {defn.url}",
        args_schema=defn.args_schema,
        result_schema=defn.result_schema,
        side_effect=defn.side_effect,
        idempotent=defn.idempotent,
        data_sources=defn.data_sources,
        compensating_tool=defn.compensating_tool,
    )


def sandboxed_definition(defn: HttpToolDef, base_url: str) -> HttpToolDef:
    """``defn`` pointed at ``base_url``: its URL's scheme and host are replaced, its path and
    templates kept (an evaluation's binding of the tool to a test service)."""
    parts = urlsplit(defn.url)
    base = urlsplit(base_url)
    path = base.path.rstrip("/") + parts.path
    url = urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))
    return dataclasses.replace(defn, url=url)


class UnboundTool:
    """An HTTP tool in an evaluation whose suite binds it to no sandbox service: every call is
    refused, so an evaluation never reaches the production service the version names."""

    def __init__(self, spec: ToolSpec, *, reason: str | None = None) -> None:
        self._spec = spec
        self._reason = reason

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    def call(self, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        if self._reason is not None:
            raise ToolError(self._reason)
        raise ToolError(
            f"{self._spec.name} has no sandbox binding in this evaluation; add "
            f"sandbox.http.{self._spec.name}: <base URL of a test service> to the suite"
        )


class HttpTool:
    """A tool that makes one HTTP request per attempt, as its ``HttpToolDef`` describes.

    Args:
        defn: the declarative definition from the version document.
        client: the shared HTTP client (connection pooling, transport, base settings).
    """

    def __init__(self, defn: HttpToolDef, client: httpx.Client) -> None:
        self.defn = defn
        self.client = client
        self.method = defn.method.upper()
        body = defn.body or ("args" if self.method in _BODY_METHODS else "none")
        self.sends_body = body == "args"
        self._url_names = frozenset(_PLACEHOLDER.findall(defn.url))
        self._query_names = frozenset(
            name for template in defn.query.values() for name in _PLACEHOLDER.findall(template)
        )
        self._spec = http_tool_spec(defn)

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    def call(self, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Make the request and return its JSON object (a JSON array comes back as ``items``).

        Raises:
            ToolTimeout: no answer within the time bound (retryable, unhealthy).
            ToolError: retryable and unhealthy for connection failures and HTTP 408, 429 and
                5xx; not retryable and healthy (the service answered, or nothing was sent) for
                other 4xx answers, a missing environment variable or URL argument, and a body
                that is not a JSON object or array.
        """
        secrets: list[str] = []
        headers = {"Idempotency-Key": ctx.idempotency_key}
        if ctx.fence is not None:
            # Grows with every claim of the run: a service that keeps the highest token it saw
            # per run can refuse a request from a worker that lost its claim.
            headers["Steward-Fencing-Token"] = ctx.fence.token
        for header, template in self.defn.headers.items():
            headers[header] = self._resolve_env(header, template, secrets)
        url = self._url(args)
        params = self._params(args)
        body = None
        if self.sends_body:
            consumed = self._url_names | self._query_names
            body = {key: value for key, value in args.items() if key not in consumed}
        timeout = (
            ctx.timeout_s
            if self.defn.timeout_s is None
            else min(self.defn.timeout_s, ctx.timeout_s)
        )
        where = f"{self.method} {_without_query(url)}"
        if ctx.cancelled.is_set():
            raise FenceLost(
                f"{self.defn.name}: the call outlived its timeout; {where} was not sent"
            )
        started = time.perf_counter()
        try:
            response = self.client.request(
                self.method, url, params=params, json=body, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException:
            raise ToolTimeout(
                f"{self.defn.name}: {where} gave no answer within {timeout:g}s"
            ) from None
        except httpx.UnsupportedProtocol as exc:
            raise self._error(f"{where} is not a usable URL ({exc})", secrets) from None
        except httpx.TransportError as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise self._error(f"cannot reach {where} ({detail})", secrets, retryable=True) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._error(f"{where} failed ({type(exc).__name__}: {exc})", secrets) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.debug(
            "http tool %s: %s -> %d in %.0fms",
            self.defn.name,
            where,
            response.status_code,
            elapsed_ms,
        )
        return self._result(response, where, secrets)

    def _resolve_env(self, header: str, template: str, secrets: list[str]) -> str:
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            value = os.environ.get(name)
            if value is None:
                raise ToolError(
                    f"{self.defn.name}: environment variable {name} is not set (needed by the "
                    f"{header!r} header); set it where the worker runs"
                )
            if not _HEADER_SAFE.match(value):
                raise ToolError(
                    f"{self.defn.name}: environment variable {name} holds characters that are "
                    f"not allowed in the {header!r} header"
                )
            if value:
                secrets.append(value)
            return value

        return _ENV_REFERENCE.sub(substitute, template)

    def _url(self, args: Mapping[str, Any]) -> str:
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            value = args.get(name)
            if value is None:
                raise ToolError(
                    f"{self.defn.name}: the URL needs the argument {name!r}, which is missing",
                    error_class=ErrorClass.INVALID_ARGUMENTS,
                )
            return quote(_text(value), safe="")

        return _PLACEHOLDER.sub(substitute, self.defn.url)

    def _params(self, args: Mapping[str, Any]) -> dict[str, str]:
        """Query parameters; one whose template names an absent argument is left out."""
        params = {}
        for key, template in self.defn.query.items():
            names = _PLACEHOLDER.findall(template)
            if any(args.get(name) is None for name in names):
                continue
            params[key] = _PLACEHOLDER.sub(lambda m: _text(args[m.group(1)]), template)
        return params

    def _result(self, response: httpx.Response, where: str, secrets: list[str]) -> dict[str, Any]:
        status = response.status_code
        if not 200 <= status < 300:
            snippet = response.text[:_SNIPPET].strip()
            message = f"{where} answered HTTP {status} {response.reason_phrase}"
            if snippet:
                message += f": {snippet}"
            if status == 429:
                retry_after = response.headers.get("Retry-After")
                hint = f" (Retry-After: {retry_after})" if retry_after else ""
                message = f"rate limited: {message}{hint}"
            raise self._error(message, secrets, retryable=_service_trouble(status))
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            content_type = response.headers.get("content-type", "no content-type")
            raise self._error(
                f"{where} answered with a body that is not JSON ({content_type})", secrets
            ) from None
        if isinstance(data, list):
            data = {"items": data}
        if not isinstance(data, dict):
            raise self._error(
                f"{where} answered with a JSON {type(data).__name__}, not an object or array",
                secrets,
            )
        redacted: dict[str, Any] = _redact(data, secrets)
        return redacted

    def _error(self, message: str, secrets: list[str], *, retryable: bool = False) -> ToolError:
        return ToolError(f"{self.defn.name}: {_redact(message, secrets)}", retryable=retryable)

    def __repr__(self) -> str:
        return f"HttpTool({self.defn.name!r}, {self.method} {self.defn.url!r})"


def _service_trouble(status: int) -> bool:
    """Whether an HTTP error status says the service cannot answer now (retryable, and
    unhealthy for the circuit breaker) rather than refusing this request (neither).

    5xx: the service failed. 408: it gave up waiting for the request, so a repeat may pass.
    429 is back-pressure, and counted as trouble on purpose: the service is up but will not
    serve us now, and the breaker's pause, shared by every worker, is the back-off it asks for;
    a breaker that ignored 429 would keep every run hammering a service that said stop. Every
    other status is the service's answer to this request (400, 404, 409, 422: the input).
    """
    return status >= 500 or status in (408, 429)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def _redact(value: Any, secrets: list[str]) -> Any:
    """``value`` with every secret replaced, recursing through JSON containers."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {_redact(k, secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    return value
