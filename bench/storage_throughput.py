"""Storage throughput: audit-chain appends and verification, trace-step inserts.

Prints one row per database: SQLite (temp file, WAL) always, PostgreSQL when reachable at
``STEWARD_TEST_POSTGRES_URL`` (a throwaway database is created and dropped).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import psycopg
from _table import print_table
from sqlalchemy.engine import Engine, make_url

from storage import migrate
from storage.audit import append_event, verify_chain
from storage.engine import create_engine, read_session, write_session
from storage.enums import StepKind, StepStatus
from storage.models import Agent, AgentVersion, Run, Step, Task

AUDIT_EVENTS = 2000
STEPS = 20000


def measure(engine: Engine) -> list[float]:
    migrate.upgrade(engine)
    start = time.perf_counter()
    for i in range(AUDIT_EVENTS):
        with write_session(engine) as session:
            append_event(
                session, actor="bench", action="bench.event", target_id=i, payload={"i": i}
            )
    append_rate = AUDIT_EVENTS / (time.perf_counter() - start)

    start = time.perf_counter()
    with read_session(engine) as session:
        report = verify_chain(session)
    assert report.ok and report.count == AUDIT_EVENTS
    verify_rate = AUDIT_EVENTS / (time.perf_counter() - start)

    with write_session(engine) as session:
        agent = Agent(name="bench")
        session.add(agent)
        session.flush()
        version = AgentVersion(
            agent_id=agent.id or 0,
            number=1,
            content_hash="x",
            policy_hash="y",
            spec={},
            source_yaml="",
            created_by="bench",
        )
        session.add(version)
        session.flush()
        task = Task(agent_id=agent.id or 0, input={}, submitted_by="bench")
        session.add(task)
        session.flush()
        run = Run(task_id=task.id or 0, agent_id=agent.id or 0, version_id=version.id or 0)
        session.add(run)
        session.flush()
        run_id = run.id or 0
    start = time.perf_counter()
    batch = 10
    for base in range(0, STEPS, batch):
        with write_session(engine) as session:
            for seq in range(base, base + batch):
                session.add(
                    Step(
                        run_id=run_id,
                        seq=seq,
                        kind=StepKind.EXECUTE_TOOL,
                        name="t",
                        status=StepStatus.OK,
                        input={"a": seq},
                        output={"r": seq},
                    )
                )
    step_rate = STEPS / (time.perf_counter() - start)
    return [append_rate, verify_rate, step_rate]


def main() -> None:
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        rows.append(["sqlite (WAL, file)", *measure(engine)])
        engine.dispose()
    admin = os.environ.get("STEWARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"steward_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        rows.append(["postgresql", f"unreachable: {exc}".splitlines()[0], "", ""])
    else:
        try:
            engine = create_engine(
                make_url(admin).set(drivername="postgresql+psycopg", database=name)
            )
            rows.append(["postgresql (local)", *measure(engine)])
            engine.dispose()
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print_table(
        [
            "database",
            "audit appends/s (1 per txn)",
            "audit verify events/s",
            "trace steps/s (10 per txn)",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
