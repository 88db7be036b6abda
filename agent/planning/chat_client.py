"""HTTP for the chat planner: ``POST {base_url}/chat/completions``, time-bounded and retried.

Retries (tenacity, exponential backoff with jitter from the version's ``retries`` section) cover
429, 408 and 5xx answers, timeouts and broken connections, and stop before the run's deadline
would pass. A ``Retry-After`` (or ``retry-after-ms``) header is honoured: the server's own delay
replaces the backoff, and a delay that would outlast the deadline ends the retries at once.

The API key is read from the environment variable the version names, at each request, and put
in the ``Authorization`` header and nowhere else. Every text that came back from the endpoint is
scrubbed of it before anything reads it, since a careless gateway may echo the header in an
error page; no exception or log line of this module carries request headers.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
_EXCERPT_CHARS = 300
_MIN_SECRET_CHARS = 4  # shorter "keys" would scrub ordinary words out of error messages


class ModelCallFailed(Exception):
    """A model request failed; the chat planner reports it as a ``planner_error`` proposal.

    It never leaves ``agent.planning``: a planner does not raise for model trouble. The message
    is safe to store and show (no headers, the key scrubbed).

    Attributes:
        retryable: whether the same request may succeed if sent again.
        retry_after_s: the delay the endpoint asked for, when it named one.
        attempts: every attempt made for the request, once retries are over.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
        attempts: tuple[Attempt, ...] = (),
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.attempts = attempts


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt: ``outcome`` is the status code, ``timeout`` or the transport error."""

    number: int
    latency_ms: float
    outcome: str
    retry_after_s: float | None = None


@dataclass(frozen=True)
class ModelReply:
    """A decoded 2xx reply body and the attempts it took."""

    body: Any
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True)
class RetrySettings:
    """How often and how patiently a request is retried (the version's ``retries`` section)."""

    max_attempts: int = 3
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    jitter_s: float = 0.5

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RetrySettings:
        if not values:
            return cls()
        default = cls()
        return cls(
            max_attempts=int(values.get("max_attempts", default.max_attempts)),
            initial_backoff_s=float(values.get("initial_backoff_s", default.initial_backoff_s)),
            max_backoff_s=float(values.get("max_backoff_s", default.max_backoff_s)),
            jitter_s=float(values.get("jitter_s", default.jitter_s)),
        )


class WaitRetryAfter(wait_base):
    """The endpoint's ``Retry-After`` when the failed attempt carried one, else ``fallback``.

    Written here because tenacity's waits only compute delays; none reads a server's answer.
    """

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(failure, ModelCallFailed) and failure.retry_after_s is not None:
            return failure.retry_after_s
        return float(self.fallback(retry_state))


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI, Azure) or ``Retry-After`` (seconds or
    an HTTP date); None when neither is there or readable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        with contextlib.suppress(ValueError):  # unreadable: fall back to Retry-After
            return max(0.0, float(milliseconds) / 1000.0)
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    with contextlib.suppress(ValueError):  # not seconds: an HTTP date
        return max(0.0, float(value))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class ChatEndpoint:
    """One OpenAI-compatible chat-completions endpoint.

    Args:
        base_url: the API root, e.g. ``https://api.openai.com/v1`` or
            ``http://localhost:11434/v1``; ``/chat/completions`` is appended.
        api_key_env: the name of the environment variable holding the API key, or None for an
            endpoint that needs none (a local Ollama, vLLM or llama.cpp server).
        client: the pooled HTTP client (the platform's; timeouts are set per request).
        environ: where to read the key from; default ``os.environ``.
    """

    def __init__(
        self,
        base_url: str,
        api_key_env: str | None,
        *,
        client: httpx.Client,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self._client = client
        self._environ = environ

    def complete(
        self,
        request: Mapping[str, Any],
        *,
        timeout_s: float,
        time_left_s: float,
        retries: RetrySettings,
    ) -> ModelReply:
        """Send ``request``; return the decoded reply of the first attempt that succeeds.

        Args:
            request: the JSON body.
            timeout_s: the bound on each attempt (connect, send, and each wait for data).
            time_left_s: no retry starts (after its backoff) once this much time has passed.
            retries: attempts and backoff.

        Raises:
            ModelCallFailed: the key is missing, the endpoint refused the request, or every
                attempt failed; ``attempts`` lists them.
        """
        key = self._api_key()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        content = json.dumps(request, ensure_ascii=False, default=str).encode()
        attempts: list[Attempt] = []
        client = self._client

        def attempt_once() -> Any:
            number = len(attempts) + 1
            started = time.perf_counter()
            try:
                response = client.post(
                    self.url, content=content, headers=headers, timeout=httpx.Timeout(timeout_s)
                )
            except httpx.TimeoutException:
                attempts.append(Attempt(number, _ms(started), "timeout"))
                raise ModelCallFailed(
                    f"the model endpoint did not answer within {timeout_s:g} s", retryable=True
                ) from None
            except httpx.HTTPError as exc:
                # httpx's messages name the URL, never the headers; the key is scrubbed anyway.
                kind = type(exc).__name__
                attempts.append(Attempt(number, _ms(started), kind))
                raise ModelCallFailed(
                    f"the model endpoint {self.url} cannot be reached ({kind}: "
                    f"{_scrub(str(exc), key)})",
                    retryable=True,
                ) from None
            latency = _ms(started)
            text = _scrub(response.text, key)
            status = response.status_code
            if not 200 <= status < 300:
                retry_after = parse_retry_after(response.headers)
                attempts.append(Attempt(number, latency, str(status), retry_after))
                raise ModelCallFailed(
                    f"the model endpoint answered HTTP {status}"
                    f"{_hint(status, self.api_key_env)}: {_error_text(text)}",
                    retryable=status in (408, 429) or status >= 500,
                    retry_after_s=retry_after,
                )
            try:
                body = json.loads(text)
            except ValueError:
                attempts.append(Attempt(number, latency, f"{status} (not JSON)"))
                raise ModelCallFailed(
                    f"the model endpoint answered HTTP {status} with a body that is not JSON: "
                    f"{_excerpt(text) or '(empty)'}"
                ) from None
            attempts.append(Attempt(number, latency, str(status)))
            return body

        retrying = Retrying(
            stop=stop_after_attempt(max(1, retries.max_attempts))
            | stop_before_delay(max(time_left_s, 0.0)),
            wait=WaitRetryAfter(
                wait_exponential_jitter(
                    multiplier=retries.initial_backoff_s,
                    max=retries.max_backoff_s,
                    jitter=retries.jitter_s,
                )
            ),
            retry=retry_if_exception(lambda e: isinstance(e, ModelCallFailed) and e.retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            body = retrying(attempt_once)
        except ModelCallFailed as exc:
            raise ModelCallFailed(
                _summary(exc, attempts, retries.max_attempts),
                retry_after_s=exc.retry_after_s,
                attempts=tuple(attempts),
            ) from None
        return ModelReply(body, tuple(attempts))

    def _api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        environ = os.environ if self._environ is None else self._environ
        key = environ.get(self.api_key_env, "").strip()
        if not key:
            raise ModelCallFailed(
                f"the environment variable {self.api_key_env} (planner.api_key_env) is not set "
                "for this worker; set it to the endpoint's API key"
            )
        return key

    def _log_retry(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None and outcome.failed else None
        log.warning(
            "model request to %s failed (attempt %d: %s); retrying in %.2f s",
            self.url,
            retry_state.attempt_number,
            failure,
            retry_state.upcoming_sleep,
        )


def _summary(last: ModelCallFailed, attempts: list[Attempt], max_attempts: int) -> str:
    outcomes = ", ".join(a.outcome for a in attempts)
    text = f"{last} (attempts: {outcomes})" if len(attempts) > 1 else str(last)
    if last.retryable and len(attempts) < max_attempts:
        text += "; stopped retrying before the run's deadline"
        if last.retry_after_s is not None:
            text += f" (the endpoint asked to wait {last.retry_after_s:g} s)"
    return text


def _hint(status: int, api_key_env: str | None) -> str:
    if status in (401, 403):
        where = f"the key in {api_key_env}" if api_key_env else "planner.api_key_env"
        return f" (check {where})"
    if status == 404:
        return " (check planner.base_url and planner.model)"
    if status == 429:
        return " (rate limited)"
    return ""


def _error_text(text: str) -> str:
    """The ``error.message`` of an OpenAI-style error body, else an excerpt of the body."""
    try:
        body = json.loads(text)
    except ValueError:
        return _excerpt(text) or "(empty body)"
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return _excerpt(message if isinstance(message, str) else text)


def _scrub(text: str, secret: str | None) -> str:
    if secret and len(secret) >= _MIN_SECRET_CHARS:
        return text.replace(secret, REDACTED)
    return text


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 1] + "…"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
