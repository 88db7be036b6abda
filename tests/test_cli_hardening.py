"""The command line never shows a traceback: every bad argument is one line and exit status 2.

Numbers, user names and JSON are checked once, by the shared argument types; what reaches a
service is checked again there (``agent.inputs``), so a script calling ``submit_task`` directly
meets the same refusals. The database-specific cases (ids beyond PostgreSQL's int4, NaN, which
SQLite would store and PostgreSQL refuse) run on both databases.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, Engine
from sqlmodel import func, select

from agent.actors import Actor
from agent.demo.seed import seed_demo
from agent.errors import InvalidInput, NotFound
from agent.inputs import MAX_JSON_DEPTH
from agent.reads.runs import model_usage, run_details
from agent.tasks import submit_task
from storage import migrate
from storage.engine import create_engine, read_session
from storage.models import Task
from tests.support.cli import ok, refused, steward
from tests.support.runtime import platform_for

OLGA = Actor.of("olga", ["operator"])
TASK = {"intent": "order_status", "customer_id": "C-1012", "order_id": "O-5015"}


def _seeded(url: URL | str) -> Engine:
    engine = create_engine(url)
    migrate.upgrade(engine)
    seed_demo(platform_for(engine), with_tasks=False)
    return engine


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Engine]:
    """The demo without tasks on SQLite: the argument types refuse before any database work,
    so one database shows it; the cases that depend on the database run on both below."""
    engine = _seeded(f"sqlite:///{tmp_path / 'cli.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def seeded_any(db_url: URL) -> Iterator[Engine]:
    """The demo without tasks, on SQLite and on PostgreSQL."""
    engine = _seeded(db_url)
    yield engine
    engine.dispose()


def _tasks(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Task)).one())


def _deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


SUBMIT = ("submit", "support", "--as", "olga", "--input")


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (("runs", "show", "99999999999999999999999", "--as", "erin"), "RUN must be a run id"),
        (("runs", "show", "0", "--as", "erin"), "from 1 to 2147483647, not '0'"),
        (("runs", "show", "12abc", "--as", "erin"), "not '12abc'"),
        (("versions", "show", "support", "-3", "--as", "erin"), "N must be a version number"),
        (("reviews", "approve", "1", "--as", "olga", "--seen-version", "1e3"), "a row version"),
        (("runs", "list", "--as", ""), "--as needs a user name"),
        (("runs", "list", "--as", "   "), "--as needs a user name"),
        (("db", "upgrade", "nonsense"), "cannot upgrade to 'nonsense': the revisions are 0001"),
        (("db", "downgrade", "nonsense"), "cannot downgrade to 'nonsense'"),
        (("worker", "--lease", "nan"), "--lease must be a lease in seconds"),
        (("worker", "--lease", "0"), "from 1 up to 86400, not '0'"),
        (("worker", "--lease", "inf"), "not 'inf'"),
        (("worker", "--poll", "-1"), "--poll must be seconds between claims"),
        (("worker", "--poll", "0"), "not '0'"),
        (("worker", "--concurrency", "0"), "--concurrency must be how many runs at once"),
        (("demo", "stream", "--rate", "nan"), "--rate must be tasks per second"),
        (("demo", "stream", "--rate", "0"), "above 0 up to 1000, not '0'"),
        (("demo", "stream", "--count", "-5"), "--count must be how many to submit"),
        (("kpis", "--since", "yesterday", "--as", "mona"), "--since must be an ISO date"),
        (
            ("reviews", "approve", "1", "--as", "olga", "--args", ""),
            "--args needs a JSON object; leave it out to approve as proposed",
        ),
        ((*SUBMIT, ""), "--input needs a JSON object"),
        ((*SUBMIT, '{"amount": NaN}'), "not finite (NaN or Infinity) at $.amount"),
        ((*SUBMIT, '{"amount": -Infinity}'), "not finite"),
        ((*SUBMIT, '{"amount": 1e999}'), "not finite"),
        ((*SUBMIT, '{"n": 123456789012345678901234567890}'), "integer beyond 64 bits at $.n"),
        ((*SUBMIT, '{"message": "a\\u0000b"}'), "NUL character in $.message"),
        ((*SUBMIT, '{"message": "\\ud800"}'), "lone UTF-16 surrogate in $.message"),
        ((*SUBMIT, '{"list": [{"\\udfff": 1}]}'), "a key of $.list[0]"),
        ((*SUBMIT, _deep(MAX_JSON_DEPTH + 1)), f"nested deeper than {MAX_JSON_DEPTH} levels"),
        ((*SUBMIT, "[" * 30_000 + "]" * 30_000), "nested deeper than"),
        ((*SUBMIT, "[1, 2]"), "must be a JSON object"),
        ((*SUBMIT, "{oops"), "is not valid JSON"),
        ((*SUBMIT, "@/nonexistent/task.json"), "no such file"),
        ((*SUBMIT, '{"a": 1}', "--priority", "101"), "--priority must be a priority"),
        (("runs", "show", "1", "--as", "nobody"), "there is no user named 'nobody'"),
        (("runs", "list", "--as", "caf\udcc3"), "argument 4 is not valid UTF-8 text"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    seeded: Engine, arguments: tuple[str, ...], fragment: str
) -> None:
    started = time.monotonic()
    refused(steward(seeded, *arguments, timeout=60), fragment)
    # Nothing hangs on a bad value (a negative poll interval used to wait for ever).
    assert time.monotonic() - started < 30
    assert _tasks(seeded) == 0


def test_a_non_utf8_steward_user_is_refused(seeded: Engine) -> None:
    refused(
        steward(seeded, "runs", "list", env={"STEWARD_USER": "caf\udcc3"}),
        "STEWARD_USER is not valid UTF-8 text",
    )


def test_input_from_a_file_or_standard_input(seeded: Engine, tmp_path: Path) -> None:
    task = tmp_path / "task.json"
    task.write_text(json.dumps(TASK), encoding="utf-8")
    ok(steward(seeded, *SUBMIT, f"@{task}"))
    # Far beyond what one command-line argument may hold (128 KiB on Linux).
    big = {**TASK, "notes": "x" * 600_000}
    queued = json.loads(ok(steward(seeded, *SUBMIT, "-", "--json", stdin=json.dumps(big))))
    assert queued["status"] == "queued"
    with read_session(seeded) as session:
        stored = session.get(Task, queued["task_id"])
    assert stored is not None
    assert stored.input == big
    too_big = {**TASK, "notes": "x" * 1_000_001}
    refused(steward(seeded, *SUBMIT, "-", stdin=json.dumps(too_big)), "more than 1,000,000 bytes")
    (tmp_path / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    refused(steward(seeded, *SUBMIT, f"@{tmp_path / 'latin1.json'}"), "is not UTF-8 text")
    assert _tasks(seeded) == 2


def test_an_empty_args_is_not_approve_as_proposed(seeded: Engine) -> None:
    """``--args ''`` used to approve the call unchanged; leaving it out is how to do that."""
    refused(
        steward(seeded, "reviews", "approve", "1", "--as", "olga", "--args", ""),
        "leave it out to approve as proposed",
    )
    # Leaving it out gets as far as the review itself.
    refused(steward(seeded, "reviews", "approve", "1", "--as", "olga"), "review 1 does not exist")


def test_database_dependent_cases_on_both_databases(seeded_any: Engine) -> None:
    # PostgreSQL's INTEGER stops at 2147483647: one more must be refused before any query.
    refused(steward(seeded_any, "runs", "show", "2147483648", "--as", "erin"), "RUN must be")
    refused(
        steward(seeded_any, "reviews", "reject", "2147483648", "--as", "olga", "--reason", "x"),
        "REVIEW must be a review id",
    )
    refused(steward(seeded_any, *SUBMIT, '{"amount": NaN}'), "not finite")
    # PostgreSQL refuses a negative LIMIT or OFFSET with an SQL error; neither gets that far.
    refused(steward(seeded_any, "runs", "list", "--as", "erin", "--limit", "-1"), "--limit must")
    refused(steward(seeded_any, "runs", "list", "--as", "erin", "--offset", "-1"), "--offset must")
    refused(
        steward(seeded_any, "runs", "show", "2147483647", "--as", "erin"),
        "run 2147483647 does not exist",
    )
    assert _tasks(seeded_any) == 0


@pytest.mark.parametrize(
    ("task_input", "fragment"),
    [
        ({"amount": float("nan")}, "not finite"),
        ({"amount": float("inf")}, "not finite"),
        ({"n": 2**64}, "beyond 64 bits"),
        ({"message": "a\x00b"}, "NUL character in $.message"),
        ({"message": "caf\udcc3"}, "lone UTF-16 surrogate in $.message"),
        ({"nested": {"odd key": ["\ud83d"]}}, 'surrogate in $.nested["odd key"][0]'),
        ({"when": object()}, "JSON cannot carry (object) at $.when"),
        ('{"amount": NaN}', "not finite"),
        ({"deep": json.loads(_deep(MAX_JSON_DEPTH))}, "nested deeper than"),
        ({"notes": "x" * 1_000_001}, "the limit is 1,000,000"),
        ({}, "non-empty JSON object"),
    ],
)
def test_submit_task_checks_what_a_script_hands_it(
    seeded_any: Engine, task_input: Any, fragment: str
) -> None:
    """The console's form and any script reach the same checks as the command line."""
    with pytest.raises(InvalidInput) as refused_input:
        submit_task(platform_for(seeded_any), OLGA, "support", task_input)
    assert fragment in str(refused_input.value)
    assert _tasks(seeded_any) == 0


def test_submit_task_bounds_the_priority(seeded_any: Engine) -> None:
    for priority in (-1, 101, 2**40):
        with pytest.raises(InvalidInput, match="a priority is from 0 to 100"):
            submit_task(platform_for(seeded_any), OLGA, "support", TASK, priority=priority)
    assert submit_task(platform_for(seeded_any), OLGA, "support", TASK, priority=100) >= 1


def test_ids_no_row_can_have_are_not_found(seeded_any: Engine) -> None:
    platform = platform_for(seeded_any)
    for run_id in (0, -1, 2**31, 10**30):
        with pytest.raises(NotFound, match=f"run {run_id} does not exist"):
            run_details(platform, OLGA, run_id)
        assert model_usage(platform, OLGA, run_id) is None
