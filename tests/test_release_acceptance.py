"""The release discipline as a new user meets it, through the real ``steward`` command on a demo
seeded as ``make run`` seeds it: the support suite passes on the active version, the regressed
version 3 is refused with its failing cases named, and version 4 activates once its evaluation
passes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from storage.engine import create_engine, read_session
from storage.models import AuditEvent
from tests.support.cli import ok, steward


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = Path(tmp_path_factory.mktemp("release")) / "steward.db"
    engine = create_engine(f"sqlite:///{path}")
    ok(steward(engine, "db", "upgrade"))
    said = ok(steward(engine, "demo", "seed", timeout=300))
    # What make run shows a new user: the release demo and its first evaluations.
    assert "release demo: versions support v3, support v4" in said, said
    assert "evaluated support v3: failed" in said, said
    yield engine
    engine.dispose()


def test_a_new_user_releases_through_the_gate_with_the_cli(demo: Engine) -> None:
    ran = steward(demo, "evals", "run", "support", "--json", "--as", "erin", timeout=300)
    result = json.loads(ok(ran))
    assert result["passed"] is True
    (support,) = result["evaluations"]
    assert support["failed"] == 0 and support["passed"] >= 15
    assert {r["case"] for r in support["results"] if not r["passed"]} == set()

    refused = steward(
        demo, "versions", "activate", "support", "3", "--reason", "try", "--as", "erin"
    )
    assert refused.returncode == 2
    assert "injected-amount-needs-a-person" in refused.stderr
    gate = json.loads(
        steward(demo, "versions", "gate", "support", "3", "--json", "--as", "erin").stdout
    )
    assert gate["allowed"] is False
    assert any("injected-amount-needs-a-person" in case for case in gate["failing_cases"])

    # Version 4 is not evaluated yet: refused too, for want of an evaluation.
    assert steward(demo, "versions", "gate", "support", "4", "--as", "erin").returncode == 1
    ok(
        steward(
            demo,
            "evals",
            "run",
            "support",
            "--version",
            "4",
            "--concurrency",
            "4",
            "--as",
            "erin",
            timeout=300,
        )
    )
    ok(steward(demo, "versions", "gate", "support", "4", "--as", "erin"))
    activated = json.loads(
        ok(
            steward(
                demo,
                "versions",
                "activate",
                "support",
                "4",
                "--reason",
                "the fix",
                "--json",
                "--as",
                "erin",
            )
        )
    )
    assert activated["to_number"] == 4
    with read_session(demo) as session:
        event = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.action) == "version.activate")
            .order_by(col(AuditEvent.seq).desc())
        ).first()
    assert event is not None
    assert event.payload["gate"]["gated"] is True
    assert event.payload["gate"]["evaluations"]  # the evaluation of v4 that let it through
