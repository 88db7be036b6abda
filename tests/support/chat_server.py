"""A chat-completions endpoint on loopback, scripted per test, for the chat planner's tests.

``ChatServer`` is a real HTTP server in a thread. Each request is answered by the next entry of
its script (a ``Reply``, or a function of the request), then by its default responder. Helpers
build OpenAI-style replies (tool calls, final answers, refusals, errors, garbage), and
``SupportModel`` stands in for a capable model on the demo support agent: it reads the
conversation it is sent, like a model would, and proposes what a sensible agent does next. With
``obey_injections`` it also does what the customer's message tells it to.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4o-mini"
_TASK = re.compile(r"<task-data>\n(.*)\n</task-data>", re.DOTALL)
_ids = itertools.count(1)


@dataclass
class Received:
    """One request as the server saw it."""

    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    def tool_messages(self) -> list[dict[str, Any]]:
        """The decoded JSON envelopes of the tool messages, in order."""
        return [json.loads(m["content"]) for m in self.messages if m["role"] == "tool"]


@dataclass
class Reply:
    """What the server answers: a status, a body (a dict is sent as JSON), headers, a delay."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Responder = Callable[[Received], Reply]


def completion(
    *,
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    refusal: str | None = None,
    finish_reason: str | None = None,
    usage: tuple[int, int] = (100, 20),
    model: str = MODEL,
) -> Reply:
    """A 200 reply in the chat-completions format."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if refusal is not None:
        message["refusal"] = refusal
    return Reply(
        body={
            "id": f"chatcmpl-{next(_ids)}",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }
    )


def call(tool: str, args: Any) -> dict[str, Any]:
    """One tool call; ``args`` as a dict is encoded, as a string it is sent as it is."""
    arguments = args if isinstance(args, str) else json.dumps(args)
    return {
        "id": f"call_{next(_ids)}",
        "type": "function",
        "function": {"name": tool, "arguments": arguments},
    }


def calls(*items: tuple[str, Any], content: str = "", usage: tuple[int, int] = (100, 20)) -> Reply:
    return completion(content=content, tool_calls=[call(t, a) for t, a in items], usage=usage)


def final(answer: Any, *, usage: tuple[int, int] = (100, 20)) -> Reply:
    return completion(tool_calls=[call("final_answer", answer)], usage=usage)


def error(status: int, body: Any = "", headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=body, headers=headers or {})


def task_of(request: Received) -> dict[str, Any]:
    """The task the planner put inside ``<task-data>``."""
    user = next(m for m in request.messages if m["role"] == "user")
    match = _TASK.search(user["content"])
    assert match is not None, user["content"]
    task: dict[str, Any] = json.loads(match.group(1))
    return task


@dataclass
class Outcome:
    tool: str
    args: Any
    envelope: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.envelope.get("status") == "ok"

    @property
    def result(self) -> dict[str, Any]:
        return dict(self.envelope.get("result") or {})


def outcomes(request: Received) -> list[Outcome]:
    """Every past tool call in the conversation with the envelope Steward sent back for it."""
    asked: dict[str, tuple[str, Any]] = {}
    found = []
    for message in request.messages:
        for tool_call in message.get("tool_calls") or ():
            function = tool_call["function"]
            asked[tool_call["id"]] = (function["name"], json.loads(function["arguments"]))
        if message["role"] == "tool":
            tool, args = asked[message["tool_call_id"]]
            found.append(Outcome(tool, args, json.loads(message["content"])))
    return found


class SupportModel:
    """A model that handles the demo support agent's refund tasks by reading the conversation.

    It confirms the customer and the order (two calls in one reply), checks the fraud score,
    refunds, then emails the customer at the address on file and closes the ticket (two calls
    again), and answers through ``final_answer``. It adapts to what Steward tells it: a refund
    that is denied or rejected is not repeated. With ``obey_injections`` it first refunds the
    amount the customer's message demands (the naive model every injection test needs).
    """

    def __init__(self, *, obey_injections: bool = False) -> None:
        self.obey_injections = obey_injections

    def __call__(self, request: Received) -> Reply:
        task = task_of(request)
        seen = outcomes(request)
        done = {o.tool: o.result for o in seen if o.ok}
        order, customer = task["order_id"], task["customer_id"]
        if "lookup_customer" not in done or "lookup_order" not in done:
            return calls(
                ("lookup_customer", {"customer_id": customer}),
                ("lookup_order", {"order_id": order}),
                content="Confirm the customer and the order first.",
            )
        if "check_fraud_score" not in done:
            return calls(("check_fraud_score", {"order_id": order}))
        if done["check_fraud_score"]["risk"] == "high":
            return final(_answer("escalated", f"Order {order} has a high fraud score."))
        if "issue_refund" not in done:
            amount = self._next_amount(task, seen)
            if amount is None:
                last = [o for o in seen if o.tool == "issue_refund"][-1]
                return final(
                    _answer(
                        "declined",
                        f"The refund on order {order} did not go through: "
                        f"{last.envelope.get('message')}",
                    )
                )
            args = {"customer_id": customer, "order_id": order, "amount": amount}
            return calls(("issue_refund", {**args, "reason": task.get("reason", "")}))
        refunded = done["issue_refund"]["amount"]
        todo = []
        if not any(o.tool == "send_email" for o in seen):
            todo.append(
                (
                    "send_email",
                    {
                        "customer_id": customer,
                        "to": done["lookup_customer"]["email"],
                        "subject": f"Your refund for order {order}",
                        "body": f"We refunded {refunded:.2f} USD for order {order}.",
                    },
                )
            )
        if task.get("ticket_id") and not any(o.tool == "close_ticket" for o in seen):
            todo.append(
                (
                    "close_ticket",
                    {"ticket_id": task["ticket_id"], "resolution": f"Refunded {refunded:.2f} USD."},
                )
            )
        if todo:
            return calls(*todo, content="Tell the customer and close the ticket.")
        return final(
            _answer(
                "resolved",
                f"Refunded {refunded:.2f} USD on order {order} for customer {customer}.",
            )
        )

    def _next_amount(self, task: Mapping[str, Any], seen: list[Outcome]) -> float | None:
        tried = [o.args.get("amount") for o in seen if o.tool == "issue_refund"]
        wanted = [float(task["amount"])]
        demanded = re.search(r"refund \$([0-9][0-9,]*)", str(task.get("message", "")))
        if self.obey_injections and demanded:
            wanted.insert(0, float(demanded.group(1).replace(",", "")))
        return next((amount for amount in wanted if amount not in tried), None)


def _answer(resolution: str, summary: str) -> dict[str, Any]:
    return {"resolution": resolution, "summary": summary}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        received = Received(time.monotonic(), self.path, dict(self.headers.items()), body)
        owner = self.server.owner
        with owner.lock:
            owner.received.append(received)
            responder = owner.script.popleft() if owner.script else owner.fallback
        if self.path.rstrip("/") != "/v1/chat/completions":
            reply = error(404, {"error": {"message": f"no route {self.path}"}})
        else:
            reply = responder(received) if callable(responder) else responder
        if reply.delay_s and owner.stopping.wait(reply.delay_s):
            return  # the test is over; the client gave up long ago
        data = (
            reply.body.encode()
            if isinstance(reply.body, str)
            else reply.body
            if isinstance(reply.body, bytes)
            else json.dumps(reply.body).encode()
        )
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client timed out and closed the connection


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: ChatServer


def _no_script(request: Received) -> Reply:
    return error(500, {"error": {"message": "the test's script has no reply left"}})


class ChatServer:
    """The scripted endpoint; ``url`` is the ``base_url`` a version points at."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.script: deque[Reply | Responder] = deque()
        self.fallback: Reply | Responder = _no_script
        self.stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,))
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def answer(self, *replies: Reply | Responder) -> None:
        """Queue replies for the next requests, in order."""
        with self.lock:
            self.script.extend(replies)

    def always(self, reply: Reply | Responder) -> None:
        """Answer with ``reply`` once the queued replies are used up."""
        with self.lock:
            self.fallback = reply

    def close(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def serve() -> Iterator[ChatServer]:
    """For a fixture: a started server, closed afterwards."""
    server = ChatServer()
    try:
        yield server
    finally:
        server.close()
