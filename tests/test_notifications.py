"""Notifications: a real SMTP server on loopback (aiosmtpd) and a real loopback webhook receiver
that verifies the signature; a receiver that fails for a while gets every message once it
recovers, and no delivery happens on a run's path."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import SYSTEM, Actor
from agent.demo.seed import seed_demo
from agent.errors import ConfigurationError, Forbidden, InvalidInput
from agent.evals.service import run_evaluation
from agent.evals.suites import create_suite
from agent.notify import (
    collect_events,
    current_config,
    deliver_due,
    notification_status,
    notify_once,
    parse_config,
    save_settings,
    saved_settings,
)
from agent.notify.config import Event, NotifyConfig
from agent.notify.signing import verify
from agent.reviews import expire_overdue
from agent.settings import check_settings
from storage.engine import read_session, write_session
from storage.enums import CircuitState, RunStatus
from storage.models import CircuitBreaker, Notification, Review
from storage.types import utcnow
from tests.support.cli import ok, steward
from tests.support.console import open_console
from tests.support.runtime import (
    Effects,
    drive,
    install_agent,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)

SECRET = "s3cret-for-tests"
SECRET_ENV = "STEWARD_TEST_WEBHOOK_SECRET"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    """aiosmtpd's handler: keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


class Receiver:
    """A loopback webhook receiver that checks each request's signature the way the README
    tells a receiver to, and answers 503 to the first ``fail_first`` requests."""

    def __init__(self) -> None:
        self.fail_first = 0
        self.seen = 0
        self.accepted: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            timestamp = self.headers["Steward-Timestamp"]
            expected = hmac.new(
                SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            fresh = abs(time.time() - int(timestamp)) <= 300
            with state.lock:
                state.seen += 1
                failing = state.seen <= state.fail_first
                good = fresh and hmac.compare_digest(
                    f"v1={expected}", self.headers["Steward-Signature"]
                )
                if not good:
                    state.bad_signatures += 1
                elif not failing:
                    state.accepted.append(json.loads(body))
            self.send_response(503 if failing or not good else 204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/steward"
    server.shutdown()
    server.server_close()


def _config(smtp_port: int, webhook: str, **route: Any) -> NotifyConfig:
    return parse_config(
        {
            "console_url": "http://console.example:8501",
            "channels": {
                "mail": {
                    "url": f"mailto://127.0.0.1:{smtp_port}?from=steward@example.com"
                    "&to=ops@example.com"
                },
                "hook": {"webhook": webhook, "secret_env": SECRET_ENV},
            },
            "routes": [
                {"events": ["review.raised", "review.expired"], "channels": ["mail", "hook"]},
                {"events": ["review.sla_80"], "channels": ["hook"], **route},
            ],
        }
    )


def _parked(engine: Engine, count: int = 1) -> list[int]:
    effects = Effects()
    registry = shop_registry(effects)
    script = [
        {
            "reasoning": "refund",
            "calls": [{"tool": "pay", "args": {"order_id": "O1", "amount": 300}}],
        },
        {"reasoning": "done", "final": {"resolution": "refunded"}},
    ]
    install_agent(engine, "shop", scripted_version(script))
    for _ in range(count):
        submit(engine, "shop", {"order_id": "O1"})
    assert drive(engine, registry).count(RunStatus.WAITING_REVIEW) == count
    with read_session(engine) as session:
        return [r.id or 0 for r in session.exec(select(Review).order_by(col(Review.id)))]


def test_a_raised_review_reaches_an_smtp_server_and_a_signed_webhook(
    engine: Engine,
    smtp: tuple[Mailbox, int],
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    mailbox, port = smtp
    state, url = receiver
    [review_id] = _parked(engine)
    platform = platform_for(engine)
    config = _config(port, url)
    assert state.seen == 0 and mailbox.messages == []  # the run raised it; nothing was sent

    assert collect_events(platform, config) == 2
    assert collect_events(platform, config) == 0  # found again: queued once
    report = deliver_due(platform, config)
    assert (report.sent, report.failed) == (2, 0)

    [mail] = mailbox.messages
    assert mail["Subject"] == f"Steward: review {review_id} waits for a decision"
    text = next(
        part.get_payload(decode=True).decode()
        for part in mail.walk()
        if part.get_content_type() == "text/plain"
    )
    assert "Task: 1" in text and 'Call: pay({"amount": 300, "order_id": "O1"})' in text
    assert "Rule: pay-medium: refunds over $100 need an operator" in text
    assert f"http://console.example:8501/queue?review={review_id}" in text
    [hook] = state.accepted
    assert state.bad_signatures == 0
    assert (hook["event"], hook["review_id"], hook["rule_id"], hook["tool"]) == (
        "review.raised",
        review_id,
        "pay-medium",
        "pay",
    )
    assert hook["link"] == f"http://console.example:8501/queue?review={review_id}"
    assert deliver_due(platform, config).sent == 0  # nothing is sent twice


def test_the_signature_covers_the_body_and_the_timestamp() -> None:
    body = b'{"event":"review.raised"}'
    now = 1_800_000_000
    digest = hmac.new(b"k", f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    assert verify(b"k", str(now), body, f"v1={digest}", now=now)
    assert not verify(b"k", str(now), body + b" ", f"v1={digest}", now=now)
    assert not verify(b"other", str(now), body, f"v1={digest}", now=now)
    assert not verify(b"k", str(now), body, f"v1={digest}", now=now + 301)


def test_a_receiver_that_fails_for_a_while_gets_every_message_after_it_recovers(
    engine: Engine,
    smtp: tuple[Mailbox, int],
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    state, url = receiver
    state.fail_first = 6
    review_ids = _parked(engine, 3)
    platform = platform_for(engine)
    config = parse_config(
        {
            "channels": {"hook": {"webhook": url, "secret_env": SECRET_ENV}},
            "routes": [{"events": ["review.raised"], "channels": ["hook"]}],
        }
    )
    assert collect_events(platform, config) == 3
    now = utcnow()
    first = deliver_due(platform, config, now=now)
    assert (first.sent, first.failed) == (0, 3)
    status = notification_status(platform, Actor.of("ada", ["admin"]))
    [hook] = status.channels
    assert (hook.pending, hook.retrying, hook.sent) == (3, 3, 0)
    assert hook.last_error == "hook: the receiver answered 503"
    assert status.failing
    assert deliver_due(platform, config, now=now).sent == 0  # backing off: not due yet
    second = deliver_due(platform, config, now=now + timedelta(minutes=1))
    assert (second.sent, second.failed) == (0, 3)  # still down
    third = deliver_due(platform, config, now=now + timedelta(hours=1))
    assert (third.sent, third.failed) == (3, 0)  # recovered: every message arrives
    assert sorted(h["review_id"] for h in state.accepted) == review_ids
    with read_session(engine) as session:
        rows = session.exec(select(Notification)).all()
    assert all((r.status, r.attempts, r.last_error) == ("sent", 3, None) for r in rows)
    assert not notification_status(platform, Actor.of("ada", ["admin"])).failing


def test_sla_and_expiry_events_follow_the_review_clock(
    engine: Engine,
    smtp: tuple[Mailbox, int],
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    mailbox, port = smtp
    state, url = receiver
    [review_id] = _parked(engine)
    platform = platform_for(engine)
    config = _config(port, url, min_risk=1000)
    with read_session(engine) as session:
        review = session.get(Review, review_id)
    assert review is not None and review.sla_due_at is not None
    assert collect_events(platform, config, now=review.created_at) == 2  # raised only
    late = review.created_at + (review.sla_due_at - review.created_at) * 0.85
    assert collect_events(platform, config, now=late) == 1  # 80% of the SLA used: the hook
    expire_overdue(platform, now=review.sla_due_at + timedelta(seconds=1))
    assert collect_events(platform, config) == 2  # expired: mail and hook
    deliver_due(platform, config, now=review.sla_due_at + timedelta(minutes=1))
    assert [m["Subject"] for m in mailbox.messages] == [
        f"Steward: review {review_id} waits for a decision",
        f"Steward: review {review_id} expired without a decision (recorded as expired, "
        "not rejected)",
    ]
    assert sorted(h["event"] for h in state.accepted) == [
        "review.expired",
        "review.raised",
        "review.sla_80",
    ]


def test_routes_choose_channels_by_agent_rule_risk_and_tier() -> None:
    config = parse_config(
        {
            "channels": {"a": {"url": "json://localhost"}, "b": {"url": "json://localhost"}},
            "routes": [
                {"events": ["review.raised"], "agents": ["support"], "channels": ["a"]},
                {"events": ["review.raised"], "min_risk": 1500, "tiers": [2], "channels": ["b"]},
                {"events": ["review.tier"], "rules": ["refund-over-limit"], "channels": ["a", "b"]},
            ],
        }
    )

    def event(name: str, **fields: Any) -> Event:
        return Event(name=name, key=name, subject="s", body="b", **fields)

    assert config.channels_for(event("review.raised", agent="support", risk=10, tier=1)) == ["a"]
    assert config.channels_for(event("review.raised", agent="it", risk=1600, tier=2)) == ["b"]
    assert config.channels_for(event("review.raised", agent="it", risk=1600, tier=1)) == []
    assert config.channels_for(event("review.tier", rule_id="refund-over-limit")) == ["a", "b"]
    assert config.channels_for(event("review.tier", rule_id="other")) == []


def test_a_bad_notification_file_is_refused_in_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="names the channel 'pager'"):
        parse_config(
            {"channels": {}, "routes": [{"events": ["review.raised"], "channels": ["pager"]}]}
        )
    with pytest.raises(ConfigurationError, match=r"at routes/0/events/0: 'review\.typo'"):
        parse_config(
            {
                "channels": {"a": {"url": "json://x"}},
                "routes": [{"events": ["review.typo"], "channels": ["a"]}],
            }
        )


def test_the_worker_job_reads_the_file_and_sends(
    engine: Engine,
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    state, url = receiver
    [review_id] = _parked(engine)
    platform = platform_for(engine)
    monkeypatch.delenv("STEWARD_NOTIFY_FILE", raising=False)
    assert notify_once(platform) is None  # not configured: nothing happens
    path = tmp_path / "notify.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "channels": {"hook": {"webhook": url, "secret_env": SECRET_ENV}},
                "routes": [{"events": ["review.raised"], "channels": ["hook"]}],
            }
        )
    )
    monkeypatch.setenv("STEWARD_NOTIFY_FILE", str(path))
    monkeypatch.delenv(SECRET_ENV, raising=False)
    missing = notify_once(platform)
    assert missing is not None and missing.failed == 1  # the secret is not set: not sent
    status = notification_status(platform, Actor.of("olga", ["operator"]))
    assert status.channels[0].last_error == (
        f"channel hook: the variable {SECRET_ENV} that holds its signing secret is not set."
    )
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with read_session(engine) as session:
        row = session.exec(select(Notification)).one()
    assert (
        deliver_due(
            platform, parse_config(yaml.safe_load(path.read_text())), now=row.next_attempt_at
        ).sent
        == 1
    )
    assert [h["review_id"] for h in state.accepted] == [review_id]


def test_a_new_user_gets_the_mail_follows_its_link_signs_in_and_decides(
    migrated: Engine,
    smtp: tuple[Mailbox, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The README's e-mail channel, the demo, a real worker process, the console."""
    mailbox, port = smtp
    path = tmp_path / "notify.yaml"
    path.write_text(
        "console_url: http://localhost:8501\n"
        "channels:\n"
        f'  ops-mail: {{url: "mailto://127.0.0.1:{port}?from=steward@example.com'
        '&to=ops@example.com"}\n'
        "routes:\n"
        "  - events: [review.raised]\n"
        "    agents: [support]\n"
        "    channels: [ops-mail]\n"
    )
    env = {"STEWARD_NOTIFY_FILE": str(path)}
    ok(steward(migrated, "demo", "seed", "--no-tasks", env=env))
    task = {
        "intent": "refund",
        "customer_id": "C-1004",
        "order_id": "O-5004",
        "amount": 349.0,
        "ticket_id": "T-9004",
        "reason": "customer request",
        "message": "The chair's gas lift failed after a week. Please refund $349.",
    }
    ok(steward(migrated, "submit", "support", "--input", json.dumps(task), "--as", "olga", env=env))
    ok(steward(migrated, "worker", "--drain", env=env))

    [mail] = mailbox.messages
    with read_session(migrated) as session:
        review = session.exec(select(Review)).one()
    assert mail["Subject"] == f"Steward: review {review.id} waits for a decision"
    text = next(
        part.get_payload(decode=True).decode()
        for part in mail.walk()
        if part.get_content_type() == "text/plain"
    )
    link = next(line.split(": ", 1)[1] for line in text.splitlines() if "/queue?review=" in line)
    assert link == f"http://localhost:8501/queue?review={review.id}"

    url = migrated.url.render_as_string(hide_password=False)
    signed_out = open_console(monkeypatch, url, query={"review": str(review.id)})
    assert "signin.name" in {t.key for t in signed_out.text_input}  # deciding needs sign-in
    at = open_console(
        monkeypatch, url, user="oscar", page="queue.py", query={"review": str(review.id)}
    )
    assert f"Review {review.id}: escalation of issue_refund" in [h.value for h in at.subheader]
    at.button(key="queue.approve").click().run()
    assert not at.exception, at.exception
    with read_session(migrated) as session:
        decided = session.get(Review, review.id)
    assert decided is not None and decided.decided_by == "oscar"


def test_a_notification_file_that_cannot_be_read_stops_a_process_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigurationError, match=r"STEWARD_NOTIFY_FILE: .* cannot be read"):
        check_settings({"STEWARD_NOTIFY_FILE": str(missing)})
    good = tmp_path / "notify.yaml"
    good.write_text("channels: {}\nroutes: []\n")
    assert check_settings({"STEWARD_NOTIFY_FILE": str(good)}).notify_file == good


def test_a_failed_scheduled_evaluation_and_an_open_circuit_are_announced(
    engine: Engine, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    state, url = receiver
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    erin = Actor.of("erin", ["engineer"])
    suite = dedent(
        """
        description: The nightly drift check.
        fixtures: demo
        cases:
          - name: small-refund
            input: {intent: refund, customer_id: C-1001, order_id: O-5001, amount: 45.0,
                    ticket_id: T-9001, reason: arrived damaged, message: Refund $45.}
            expect: {status: failed}
        """
    )
    create_suite(platform, erin, "support", "nightly", suite)
    (failed,) = run_evaluation(platform, SYSTEM, "support", suite="nightly", trigger="schedule")
    with write_session(engine) as session:
        session.add(CircuitBreaker(tool="fraud_check", state=CircuitState.OPEN, opened_at=utcnow()))
    config = parse_config(
        {
            "channels": {"hook": {"webhook": url, "secret_env": SECRET_ENV}},
            "routes": [{"events": ["evaluation.failed", "circuit.opened"], "channels": ["hook"]}],
        }
    )
    assert collect_events(platform, config) == 2
    assert deliver_due(platform, config).sent == 2
    by_event = {h["event"]: h for h in state.accepted}
    assert by_event["evaluation.failed"]["evaluation_id"] == failed.id
    assert by_event["evaluation.failed"]["failed_cases"] == ["small-refund"]
    assert by_event["circuit.opened"]["tool"] == "fraud_check"
    assert collect_events(platform, config) == 0


def test_admins_save_channels_and_routes_that_the_worker_then_uses(
    engine: Engine,
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("STEWARD_NOTIFY_FILE", raising=False)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    state, url = receiver
    [review_id] = _parked(engine)
    platform = platform_for(engine)
    admin = Actor.of("ada", ["admin"])
    text = (
        f"channels:\n  hook: {{webhook: '{url}', secret_env: {SECRET_ENV}}}\n"
        "routes:\n  - {events: [review.raised], channels: [hook]}\n"
    )
    with pytest.raises(Forbidden, match="may not change the notification settings"):
        save_settings(platform, Actor.of("olga", ["operator"]), text)
    with pytest.raises(InvalidInput, match="not YAML at line 2"):
        save_settings(platform, admin, "channels: {}\nroutes: [unclosed\n")
    with pytest.raises(InvalidInput, match="names the channel 'pager'"):
        save_settings(
            platform, admin, "channels: {}\nroutes: [{events: [review.raised], channels: [pager]}]"
        )
    assert current_config(platform) is None and notify_once(platform) is None

    config = save_settings(platform, admin, text)
    assert config is not None and list(config.channels) == ["hook"]
    assert saved_settings(platform, admin).updated_by == "ada"
    report = notify_once(platform)
    assert report is not None and report.sent == 1
    assert [h["review_id"] for h in state.accepted] == [review_id]

    # A file, when set, is in force instead.
    path = tmp_path / "notify.yaml"
    path.write_text("channels: {}\nroutes: []\n")
    monkeypatch.setenv("STEWARD_NOTIFY_FILE", str(path))
    in_force = current_config(platform)
    assert in_force is not None and in_force.channels == {}
    assert saved_settings(platform, admin).file == path


def test_a_url_names_its_secret_by_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(
        {
            "channels": {"chat": {"url": "slack://${TEST_SLACK_TOKENS}/#reviews"}},
            "routes": [{"events": ["review.raised"], "channels": ["chat"]}],
        }
    )
    chat = config.channels["chat"]
    monkeypatch.delenv("TEST_SLACK_TOKENS", raising=False)
    with pytest.raises(ConfigurationError, match="the variable TEST_SLACK_TOKENS its URL names"):
        chat.resolved_url()
    monkeypatch.setenv("TEST_SLACK_TOKENS", "A/B/C")
    assert chat.resolved_url() == "slack://A/B/C/#reviews"


def test_a_canary_its_guard_rolled_back_is_announced_once(
    engine: Engine, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.release.canary import abort_canary, check_canaries, set_canary_guard, start_canary
    from agent.tasks import submit_task
    from agent.versions import activate_version, create_agent, create_version
    from tests.support.canary import lookup_version

    monkeypatch.setenv(SECRET_ENV, SECRET)
    state, url = receiver
    platform = platform_for(engine)
    seed_demo(platform, with_tasks=False)
    erin, ada = Actor.of("erin", ["engineer"]), Actor.of("ada", ["admin"])
    olga = Actor.of("olga", ["operator"])
    create_agent(platform, ada, "lookup")
    create_version(platform, erin, "lookup", lookup_version("allow"))
    create_version(platform, erin, "lookup", lookup_version("escalate"))
    activate_version(platform, erin, "lookup", 1, reason="first")
    set_canary_guard(platform, ada, "lookup", ["min_samples=5"])
    config = parse_config(
        {
            "channels": {"hook": {"webhook": url, "secret_env": SECRET_ENV}},
            "routes": [{"events": ["canary.rolled_back"], "channels": ["hook"]}],
        }
    )
    # A canary a person aborts is no news to announce.
    start_canary(platform, erin, "lookup", 2, share=50, reason="first try")
    abort_canary(platform, olga, "lookup", reason="not today")
    assert collect_events(platform, config) == 0

    start_canary(platform, erin, "lookup", 2, share=50, reason="escalate every lookup")
    for _ in range(30):
        submit_task(platform, olga, "lookup", {"intent": "lookup", "customer_id": "C-1001"})
    drive(engine, max_claims=100)
    (rolled,) = check_canaries(platform).rolled_back
    assert collect_events(platform, config) == 1
    assert deliver_due(platform, config).sent == 1
    (hook,) = state.accepted
    assert (hook["event"], hook["agent"], hook["canary_id"]) == (
        "canary.rolled_back",
        "lookup",
        rolled.id,
    )
    assert collect_events(platform, config) == 0
