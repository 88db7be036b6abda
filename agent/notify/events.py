"""Finding what people should hear about, and queuing one message per event and channel.

Run by the worker every few seconds, never on a run's path: reviews raised, reviews whose SLA is
80% used, reviews that expired (to a rejection, or to the next tier), circuits that opened,
scheduled evaluations of an active version that failed, and canaries their guard rolled back.
Each event has a stable key; the outbox's unique ``dedupe_key`` (event key and channel) makes
finding it again a no-op, whichever worker finds it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from agent.actors import Actor
from agent.evals.alerts import failing_schedules
from agent.notify.config import Event, NotifyConfig
from agent.platform import Platform
from storage.engine import read_session, write_session
from storage.enums import CanaryStatus, CircuitState, ReviewStatus, Role
from storage.models import Agent, Canary, CircuitBreaker, Notification, Review, Run, Task
from storage.queries.production import of_production_run
from storage.types import utcnow

LOOKBACK = timedelta(days=1)
"""Events older than this are not announced (a worker started after a long stop does not send
yesterday's news)."""
_BATCH = 500


def collect_events(platform: Platform, config: NotifyConfig, *, now: datetime | None = None) -> int:
    """Queue the messages of every new event ``config`` routes somewhere; returns how many."""
    moment = now or utcnow()
    with read_session(platform.engine) as session:
        events = [
            *_review_events(session, config, moment),
            *_circuit_events(session, moment),
            *_canary_events(session, config, moment),
        ]
    events.extend(_evaluation_events(platform, config, moment))
    queued = 0
    rows = [(event, channel) for event in events for channel in config.channels_for(event)]
    if not rows:
        return 0
    keys = [f"{event.key}:{channel}" for event, channel in rows]
    try:
        with write_session(platform.engine) as session:
            known = set(
                session.exec(
                    select(Notification.dedupe_key).where(col(Notification.dedupe_key).in_(keys))
                ).all()
            )
            for (event, channel), key in zip(rows, keys, strict=True):
                if key in known:
                    continue
                known.add(key)
                session.add(
                    Notification(
                        dedupe_key=key,
                        event=event.name,
                        channel=channel,
                        subject=event.subject[:255],
                        body=event.body[:4000],
                        payload=dict(event.payload),
                        next_attempt_at=moment,
                    )
                )
                queued += 1
    except IntegrityError:
        # Another worker queued some of them at the same moment: its rows stand, and what is
        # still missing is queued on the next round.
        return 0
    return queued


def _review_events(session: Session, config: NotifyConfig, moment: datetime) -> Iterable[Event]:
    since = moment - LOOKBACK
    recent = session.exec(
        select(Review, Agent.name, Task.id)
        .join(Agent, col(Agent.id) == col(Review.agent_id))
        .join(Run, col(Run.id) == col(Review.run_id))
        .join(Task, col(Task.id) == col(Run.task_id))
        .where(of_production_run(Review.run_id))
        .where(
            (col(Review.created_at) >= since)
            | (col(Review.status).in_(ReviewStatus.open_statuses()))
            | (col(Review.decided_at) >= since)
        )
        .order_by(col(Review.id).desc())  # the newest first, should more than a batch be due
        .limit(_BATCH)
    ).all()
    children = {r.parent_id for r, _, _ in recent if r.parent_id is not None}
    for review, agent, task_id in recent:
        assert review.id is not None
        if review.status.is_open and review.created_at >= since:
            yield _review_event(
                "review.raised", review, agent, task_id, config, what="waits for a decision"
            )
        if review.status.is_open and review.sla_due_at is not None:
            span = review.sla_due_at - review.created_at
            if moment >= review.created_at + span * 0.8:
                yield _review_event(
                    "review.sla_80",
                    review,
                    agent,
                    task_id,
                    config,
                    what=f"has used 80% of its SLA (due {review.sla_due_at:%H:%M} UTC)",
                )
        if review.status is ReviewStatus.EXPIRED and (review.decided_at or moment) >= since:
            tiered = review.id in children
            yield _review_event(
                "review.tier" if tiered else "review.expired",
                review,
                agent,
                task_id,
                config,
                what=f"expired without a decision and went to tier {review.tier + 1}"
                if tiered
                else "expired without a decision (recorded as expired, not rejected)",
            )


def _review_event(
    name: str,
    review: Review,
    agent: str,
    task_id: int | None,
    config: NotifyConfig,
    *,
    what: str,
) -> Event:
    subject = f"Steward: review {review.id} {what}"
    call = f"{review.tool}({_short(review.args)})" if review.tool else "the final answer"
    link = f"{config.console_url}/queue?review={review.id}"
    body = (
        f"Review {review.id} ({review.kind.value}, tier {review.tier}, "
        f"risk {review.risk}) {what}.\n"
        f"Agent: {agent}\nTask: {task_id}\nCall: {call}\n"
        f"Rule: {review.rule_id or '-'}: {review.reason}\n"
        f"Open it (sign-in required to decide): {link}"
    )
    return Event(
        name=name,
        key=f"{name}:{review.id}",
        subject=subject,
        body=body,
        agent=agent,
        rule_id=review.rule_id,
        risk=review.risk,
        tier=review.tier,
        payload={
            "event": name,
            "review_id": review.id,
            "task_id": task_id,
            "run_id": review.run_id,
            "agent": agent,
            "tool": review.tool,
            "rule_id": review.rule_id,
            "tier": review.tier,
            "risk": review.risk,
            "link": link,
        },
    )


def _circuit_events(session: Session, moment: datetime) -> Iterable[Event]:
    for breaker in session.exec(
        select(CircuitBreaker).where(col(CircuitBreaker.state) == CircuitState.OPEN)
    ).all():
        opened = breaker.opened_at or breaker.updated_at
        if opened < moment - LOOKBACK:
            continue
        cause = breaker.last_error_class.value if breaker.last_error_class else "failures"
        yield Event(
            name="circuit.opened",
            key=f"circuit.opened:{breaker.tool}:{opened.isoformat()}",
            subject=f"Steward: the circuit of {breaker.tool} opened",
            body=(
                f"The circuit breaker of {breaker.tool} opened at {opened:%Y-%m-%d %H:%M:%S} UTC "
                f"after {breaker.consecutive_failures} failures ({cause}); calls to it fail fast "
                "until a trial call succeeds."
            ),
            payload={
                "event": "circuit.opened",
                "tool": breaker.tool,
                "opened_at": opened.isoformat(),
            },
        )


def _canary_events(session: Session, config: NotifyConfig, moment: datetime) -> Iterable[Event]:
    """A canary its guard rolled back (people who end one know it already)."""
    rows = session.exec(
        select(Canary, Agent)
        .join(Agent, col(Agent.id) == col(Canary.agent_id))
        .where(col(Canary.status) == CanaryStatus.ROLLED_BACK)
        .where(col(Canary.ended_at) >= moment - LOOKBACK)
    ).all()
    for canary, agent in rows:
        link = f"{config.console_url}/versions"
        yield Event(
            name="canary.rolled_back",
            key=f"canary.rolled_back:{canary.id}",
            subject=f"Steward: the canary of {agent.name} was rolled back",
            body=f"{canary.end_reason}\nNo new task goes to the candidate. Open the agent's "
            f"versions: {link}",
            agent=agent.name,
            payload={
                "event": "canary.rolled_back",
                "agent": agent.name,
                "canary_id": canary.id,
                "ended_by": canary.ended_by,
                "link": link,
            },
        )


# The notifier reads the scheduled evaluations' alerts as the managers it tells about them do.
_NOTIFIER = Actor.of("notifier", [Role.MANAGER])


def _evaluation_events(
    platform: Platform, config: NotifyConfig, moment: datetime
) -> Iterable[Event]:
    for alert in failing_schedules(platform, _NOTIFIER):
        if alert.at < moment - LOOKBACK:
            continue
        link = f"{config.console_url}/versions"
        yield Event(
            name="evaluation.failed",
            key=f"evaluation.failed:{alert.evaluation_id}",
            subject=f"Steward: the scheduled evaluation of {alert.agent} v{alert.version} "
            f"{alert.status.value}",
            body=f"{alert.sentence()}.\nOpen the agent's versions: {link}",
            agent=alert.agent,
            payload={
                "event": "evaluation.failed",
                "agent": alert.agent,
                "version": alert.version,
                "suite": alert.suite,
                "evaluation_id": alert.evaluation_id,
                "failed_cases": list(alert.failed_cases),
                "link": link,
            },
        )


def _short(args: object, limit: int = 200) -> str:
    text = json.dumps(args, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
