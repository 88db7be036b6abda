"""``steward demo seed`` and ``steward demo stream``: a populated installation in one command.

Seeding creates an account for every role, the two demo agents with their versions (version 1
active), their systems of record, and the sample tasks. With the sample tasks come the release
demo: each agent's evaluation suite (``agent/demo/suites/``), support versions 3 (a regression
the suite catches) and 4 (its fix), and evaluations of the active versions and of version 3, so
results are on screen at first start; version 4 is left for a new user to evaluate and activate.
It is idempotent: a second run adds nothing that is already there.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import col, select

from agent.actors import Actor
from agent.demo import data
from agent.demo.release import SeededEvaluation, seed_release
from agent.demo.tasks import IT_ACCESS, SUPPORT, task_inputs
from agent.platform import Platform
from agent.tasks import submit_task
from agent.users import actor_for, add_first_user, add_user
from agent.versions import activate_version, create_agent, create_version, list_versions
from storage.engine import read_session, write_session
from storage.models import Agent, User

log = logging.getLogger(__name__)

VERSIONS_DIR = Path(__file__).parent / "versions"
DEMO_AGENTS = {
    SUPPORT: (
        "Customer refunds: look up customers and orders, refund, email, close tickets.",
        "customer support",
    ),
    IT_ACCESS: ("Application access: grant and revoke access, reset passwords.", "IT access"),
}
# Demo accounts; the passwords are printed by ``make run`` and documented in the README.
DEMO_USERS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("ada", ("admin",), "ada-steward-demo"),
    ("olga", ("operator",), "olga-steward-demo"),
    ("oscar", ("operator",), "oscar-steward-demo"),
    # A third operator, so that a four-eyes call the demo's olga submitted can get its two
    # approvals from people other than her.
    ("otto", ("operator",), "otto-steward-demo"),
    ("mona", ("manager",), "mona-steward-demo"),
    ("erin", ("engineer",), "erin-steward-demo"),
)


@dataclass
class SeedReport:
    users: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    history: int = 0  # runs of backdated traffic
    records: int = 0
    tasks: int = 0
    versions: list[str] = field(default_factory=list)
    suites: list[str] = field(default_factory=list)
    evaluations: list[SeededEvaluation] = field(default_factory=list)


def seed_demo(
    platform: Platform,
    *,
    with_tasks: bool = True,
    with_evaluations: bool | None = None,
    with_history: bool = False,
) -> SeedReport:
    """Load the demo; what already exists is left alone.

    Each account, agent and version goes through its service (and its audit event) as the
    demo's admin or engineer would add them, each in its own transaction; a later call adds
    whatever an interrupted one did not (an agent counts as seeded once a version is active).

    Args:
        platform: the installation.
        with_tasks: queue the sample tasks for the agents seeded now.
        with_evaluations: add the release demo (``agent.demo.release``): the suites, support
            versions 3 and 4, and the first evaluations; by default it comes with the tasks,
            as ``steward demo seed`` loads the whole demo and ``--no-tasks`` a bare one.
        with_history: add thirty days of backdated traffic (``agent.demo.history``) for the
            agents seeded now, before the suites gate their activations.
    """
    report = SeedReport()
    with read_session(platform.engine) as session:
        existing = set(session.exec(select(User.name)).all())
        active = dict(session.exec(select(Agent.name, Agent.active_version_id)).all())
    for name, roles, password in DEMO_USERS:
        if name in existing:
            continue
        email = f"{name}@steward.example"
        if not existing and not report.users:
            add_first_user(platform, name, roles, password=password, email=email)
        else:
            admin = actor_for(platform, DEMO_USERS[0][0])
            add_user(platform, admin, name, roles, password=password, email=email)
        report.users.append(name)
    with write_session(platform.engine) as session:
        report.records = data.seed_records(session)
    engineer = actor_for(platform, "erin")
    for name, (description, domain) in DEMO_AGENTS.items():
        if active.get(name) is not None:
            continue
        if name not in active:
            create_agent(platform, engineer, name, description=description, domain=domain)
        stored = {version.number for version in list_versions(platform, engineer, name).items}
        for number in (1, 2):
            if number in stored:
                continue
            yaml_text = (VERSIONS_DIR / f"{name}-v{number}.yaml").read_text()
            create_version(platform, engineer, name, yaml_text, note=f"demo version {number}")
        activate_version(platform, engineer, name, 1, reason="demo seed: start on version 1")
        report.agents.append(name)
    if with_history and set(report.agents) == set(DEMO_AGENTS):
        from agent.demo.history import seed_history

        operators = [name for name, roles, _ in DEMO_USERS if "operator" in roles]
        report.history = seed_history(platform, operators=operators).runs
    release = with_tasks if with_evaluations is None else with_evaluations
    if release:
        # After activation: once the suites are stored, activation is gated on them.
        report.versions, report.suites, report.evaluations = seed_release(platform, engineer)
    if with_tasks and report.agents:
        operator = actor_for(platform, "olga")
        for name in report.agents:
            for task in task_inputs(name):
                submit_task(platform, operator, name, task, source="demo")
                report.tasks += 1
    return report


def stream(
    platform: Platform,
    actor: Actor,
    *,
    rate: float,
    count: int | None = None,
    stop: threading.Event | None = None,
    seed: int | None = None,
) -> int:
    """Keep submitting sample tasks at ``rate`` per second; returns how many were submitted."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    rng = random.Random(seed)  # noqa: S311 - picks demo traffic, not secrets
    with read_session(platform.engine) as session:
        agents = list(
            session.exec(select(Agent.name).where(col(Agent.name).in_(list(DEMO_AGENTS)))).all()
        )
    pool = [(name, task) for name in agents for task in task_inputs(name)]
    if not pool:
        raise ValueError("the demo is not seeded; run `steward demo seed` first")
    stop = stop or threading.Event()
    submitted = 0
    while not stop.is_set() and (count is None or submitted < count):
        name, task = rng.choice(pool)
        submit_task(platform, actor, name, task, source="demo-stream")
        submitted += 1
        stop.wait(rng.expovariate(rate))
    return submitted
