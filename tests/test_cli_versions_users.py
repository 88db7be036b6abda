"""``steward users | agents | versions`` through a real process on a migrated database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from agent.auth import authenticate
from agent.users import actor_for, add_first_user, add_user
from agent.versions import create_agent
from storage import migrate
from storage.audit import verify_chain
from storage.engine import create_engine, read_session
from tests.support.cli import ok, refused, steward
from tests.support.runtime import platform_for
from tests.test_versions import CANNOT_RUN, SAMPLE, V2, edited, line_of


def test_bootstrap_then_the_life_of_a_version(migrated: Engine, tmp_path: Path) -> None:
    root = json.loads(ok(steward(migrated, "users", "add", "root", "--role", "admin", "--json")))
    assert root["roles"] == ["admin"]
    assert len(root["password"]) >= 20
    assert authenticate(platform_for(migrated), "root", root["password"]).name == "root"

    ok(
        steward(
            migrated,
            *("users", "add", "erin", "--role", "engineer,operator", "--password-stdin"),
            *("--as", "root"),
            stdin="erin-password\n",
        )
    )
    ok(
        steward(
            migrated,
            *("users", "add", "olga", "--role", "operator", "--email", "olga@example.com"),
            *("--password-env", "OLGA_PASSWORD", "--as", "root"),
            env={"OLGA_PASSWORD": "olga-password"},
        )
    )
    assert authenticate(platform_for(migrated), "erin", "erin-password").name == "erin"
    assert authenticate(platform_for(migrated), "olga", "olga-password").name == "olga"
    users = json.loads(ok(steward(migrated, "users", "list", "--json", "--as", "root")))
    assert (users["total"], users["offset"], users["limit"], users["next_offset"]) == (
        3,
        0,
        100,
        None,
    )
    assert [(u["name"], u["roles"]) for u in users["items"]] == [
        ("erin", ["engineer", "operator"]),
        ("olga", ["operator"]),
        ("root", ["admin"]),
    ]
    assert "password" not in json.dumps(users).replace("has_password", "")

    agent = json.loads(
        ok(
            steward(
                migrated,
                "agents",
                "create",
                "support",
                "--description",
                "Refunds",
                "--as",
                "erin",
                "--json",
            )
        )
    )
    assert agent["name"] == "support"
    (tmp_path / "v1.yaml").write_text(SAMPLE)
    (tmp_path / "v2.yaml").write_text(V2)
    created = ok(
        steward(
            migrated,
            "versions",
            "create",
            "support",
            str(tmp_path / "v1.yaml"),
            "--note",
            "first",
            "--as",
            "erin",
        )
    )
    assert "created support version 1" in created
    second = json.loads(
        ok(
            steward(
                migrated,
                "versions",
                "create",
                "support",
                str(tmp_path / "v2.yaml"),
                "--as",
                "erin",
                "--json",
            )
        )
    )
    assert second["number"] == 2

    listed = json.loads(
        ok(steward(migrated, "versions", "list", "support", "--as", "olga", "--json"))
    )
    assert [(v["number"], v["note"], v["created_by"]) for v in listed["items"]] == [
        (2, "", "erin"),
        (1, "first", "erin"),
    ]
    diff = json.loads(
        ok(steward(migrated, "versions", "diff", "support", "1", "2", "--as", "olga", "--json"))
    )
    assert diff["budgets"] == [{"field": "max_steps", "before": 40, "after": 50}]
    text = ok(steward(migrated, "versions", "diff", "support", "1", "2", "--as", "olga"))
    assert "budgets.max_steps: 40 -> 50" in text
    assert "+budgets: {max_steps: 50" in text

    for args in (("activate", "support", "1"), ("activate", "support", "2")):
        ok(steward(migrated, "versions", *args, "--as", "erin", "--reason", f"go {args[-1]}"))
    back = ok(
        steward(
            migrated, "versions", "rollback", "support", "--as", "erin", "--reason", "v2 misbehaves"
        )
    )
    assert "rolled back v2 -> v1" in back
    history = json.loads(
        ok(steward(migrated, "versions", "history", "support", "--as", "olga", "--json"))
    )
    assert [
        (h["action"], h["from_number"], h["to_number"], h["actor"], h["reason"])
        for h in history["items"]
    ] == [
        ("rollback", 2, 1, "erin", "v2 misbehaves"),
        ("activate", 1, 2, "erin", "go 2"),
        ("activate", None, 1, "erin", "go 1"),
    ]
    shown = ok(steward(migrated, "versions", "show", "support", "1", "--as", "olga"))
    assert shown.startswith("* v1 ")
    assert SAMPLE in shown
    agents = ok(steward(migrated, "agents", "list", "--as", "olga"))
    assert agents.startswith("support  v1  (2 versions)")
    assert "audit chain intact: 12 events" in ok(
        steward(migrated, "audit", "verify", "--as", "root")
    )


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database with root (admin, engineer), olga (operator) and ``support``.

    The refusals below are the CLI's own behaviour, the same on either database (the services
    behind them are tested on both), and each command is a process start, so SQLite only.
    """
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    migrate.upgrade(engine)
    add_first_user(platform_for(engine), "root", ["admin", "engineer"], password="root-password")
    root = actor_for(platform_for(engine), "root")
    add_user(platform_for(engine), root, "olga", ["operator"], password="olga-password")
    create_agent(platform_for(engine), root, "support")
    yield engine
    engine.dispose()


def test_bad_input_is_one_line_and_exit_2(populated: Engine, tmp_path: Path) -> None:
    engine = populated
    create = ("versions", "create", "support")
    refused(
        steward(engine, *create, str(tmp_path / "missing.yaml"), "--as", "root"),
        "missing.yaml: no such file",
    )

    broken = tmp_path / "broken.yaml"
    broken.write_text(edited("effect: deny, reason: Refunds over", "effect: nope, reason: x"))
    refused(
        steward(engine, *create, str(broken), "--as", "root"),
        "line 11, rule 'refund-large': policy.rules[2].effect: 'nope' is not one of",
    )

    uncompilable = tmp_path / "cel.yaml"
    uncompilable.write_text(edited('"args.amount > 1000.0"', '"args.amount >"'))
    refused(
        steward(engine, *create, str(uncompilable), "--as", "root"),
        "rule 'refund-large': condition 'args.amount >' does not compile at column",
    )

    good = tmp_path / "good.yaml"
    good.write_text(SAMPLE)
    refused(steward(engine, *create, str(good), "--as", "olga"), "olga (operator) may not")
    refused(steward(engine, *create, str(good)), "name the user you act as with --as USER")
    ok(steward(engine, *create, str(good), "--as", "root"))
    refused(steward(engine, *create, str(good), "--as", "root"), "support version 1 already has")
    refused(
        steward(engine, "versions", "activate", "support", "1", "--as", "olga", "--reason", "x"),
        "may not activate",
    )
    refused(
        steward(engine, "versions", "rollback", "support", "--as", "root", "--reason", "x"),
        "no earlier active version",
    )
    refused(
        steward(engine, "users", "add", "eve", "--role", "admin", "--as", "olga"),
        "needs the role admin",
    )
    refused(steward(engine, "users", "add", "eve", "--role", "admin"), "users exist already")
    refused(
        steward(engine, "users", "add", "eve", "--role", "root", "--as", "root"),
        "'root' is not a role",
    )
    refused(steward(engine, "users", "list", "--as", "nobody"), "no user named 'nobody'")

    with read_session(engine) as session:
        assert verify_chain(session).count == 4


def test_a_version_that_cannot_run_is_one_line_and_exit_2(
    populated: Engine, tmp_path: Path
) -> None:
    # An unregistered tool, an unregistered fact, an invalid output schema, an unknown CEL
    # function or variable, an invalid HTTP tool schema: each is refused before anything is stored.
    for case in CANNOT_RUN:
        text, marker, expected = case.values
        assert isinstance(text, str) and isinstance(marker, str) and isinstance(expected, str)
        source = tmp_path / f"{case.id}.yaml"
        source.write_text(text)
        result = steward(populated, "versions", "create", "support", str(source), "--as", "root")
        refused(result, f"line {line_of(text, marker)}")
        refused(result, expected)
        assert "Traceback" not in result.stderr
    with read_session(populated) as session:
        assert verify_chain(session).count == 3  # root, olga, support: no version was created
