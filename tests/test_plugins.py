"""Tools and facts come from plugins found by their ``steward.tools`` entry point: a package
installed beside Steward (here a real distribution's metadata on the path) is found, listed with
its origin, and its tools governed like any other, in a real worker process; a plugin that fails
leaves nothing half-registered; ``STEWARD_PLUGINS`` chooses which load."""

from __future__ import annotations

import json
import os
from pathlib import Path
from textwrap import dedent

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from agent.actors import Actor
from agent.demo.seed import seed_demo
from agent.errors import InvalidInput
from agent.platform import Platform
from agent.plugins import catalogue, load_plugins
from agent.tasks import submit_task
from agent.versions import activate_version, create_agent, create_version
from storage.engine import read_session
from storage.enums import ReviewStatus, RunStatus
from storage.models import Review, Run
from tests.support.cli import ok, steward
from tests.support.runtime import platform_for

ERIN = Actor.of("erin", ["engineer"])
ADA = Actor.of("ada", ["admin"])
OLGA = Actor.of("olga", ["operator"])

ACME = dedent(
    '''
    """A plugin outside Steward: one write tool and one fact."""
    import os
    from agent.tools.base import ToolSpec
    from agent.tools.python import PythonTool
    from storage.enums import SideEffect


    def ping(args, ctx):
        # Record each execution with its idempotency key, so a test can count them.
        with open(os.environ["ACME_CALLS"], "a", encoding="utf-8") as calls:
            calls.write(ctx.idempotency_key + "\\n")
        return {"pinged": args["host"]}


    def register(registry):
        registry.register_tool(
            PythonTool(
                ToolSpec(
                    "acme_ping",
                    "Ping a host of the ACME network.",
                    {
                        "type": "object",
                        "properties": {"host": {"type": "string"}},
                        "required": ["host"],
                        "additionalProperties": False,
                    },
                    side_effect=SideEffect.WRITE,
                    idempotent=True,
                    data_sources=("acme",),
                ),
                ping,
            )
        )
        registry.register_fact("acme_zone", lambda ctx: "prod", inputs=["task.host"])
    '''
)
BROKEN = dedent(
    '''
    """A plugin that registers a tool, then fails."""
    from agent.tools.base import ToolSpec
    from agent.tools.python import PythonTool


    def register(registry):
        registry.register_tool(
            PythonTool(ToolSpec("half_done", "Never usable.", {"type": "object"}), lambda a, c: {})
        )
        raise RuntimeError("the ACME licence server is unreachable")
    '''
)
VERSION = dedent(
    """
    description: Pings a host of the ACME network; a person approves every ping in prod.
    planner:
      kind: scripted
      model: script
      script:
        - reasoning: Ping the host the task names.
          calls:
            - {tool: acme_ping, args: {host: db-1}}
        - reasoning: Done.
          final: {resolution: resolved, summary: Pinged db-1 for the task.}
    tools: [acme_ping]
    data_sources: [acme]
    policy:
      default: deny
      facts: [acme_zone]
      rules:
        - id: prod-pings-need-a-person
          tool: acme_ping
          when: facts.acme_zone == "prod"
          effect: escalate
          reason: Pinging production needs an operator.
    output:
      schema: {type: object, required: [resolution, summary]}
    """
)


def _distribution(root: Path, module: str, project: str, source: str) -> None:
    """What ``pip install`` leaves for a package: its module and its ``.dist-info``."""
    (root / f"{module}.py").write_text(source, encoding="utf-8")
    info = root / f"{project.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project}\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[steward.tools]\n{module.split('_', maxsplit=1)[0]} = {module}:register\n",
        encoding="utf-8",
    )


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    _distribution(root, "acme_steward", "acme-steward", ACME)
    _distribution(root, "broken_steward", "broken-steward", BROKEN)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("ACME_CALLS", str(tmp_path / "calls.txt"))
    return root


def test_installed_plugins_are_found_with_their_origin(plugin_path: Path) -> None:
    registry, loads = load_plugins(enabled="")
    by_name = {load.name: load for load in loads}
    assert set(by_name) == {"acme", "broken", "demo"}
    assert by_name["acme"].loaded and by_name["acme"].distribution == "acme-steward 1.0"
    assert not by_name["broken"].loaded
    assert by_name["broken"].error == "RuntimeError: the ACME licence server is unreachable"
    # What the failing plugin registered before it failed was taken back.
    assert "half_done" not in registry.tool_names
    assert registry.origin("tool", "acme_ping") == "acme (acme-steward 1.0)"
    assert registry.origin("fact", "acme_zone") == "acme (acme-steward 1.0)"
    assert registry.origin("tool", "issue_refund").startswith("demo (steward ")
    assert registry.fact_inputs("acme_zone") == ("task.host",)

    only_acme, loads = load_plugins(enabled="acme")
    assert only_acme.tool_names == ("acme_ping",)
    assert {load.name: load.loaded for load in loads} == {
        "acme": True,
        "broken": False,
        "demo": False,
    }
    assert load_plugins(enabled="none")[0].tool_names == ()
    with pytest.raises(InvalidInput, match="names nothing_here, which no installed package"):
        load_plugins(enabled="acme,nothing_here")

    listed = catalogue(enabled="acme").as_dict()
    (tool,) = listed["tools"]
    assert (tool["name"], tool["side_effect"], tool["data_sources"]) == (
        "acme_ping",
        "write",
        ["acme"],
    )
    assert tool["args_schema"]["required"] == ["host"]


def _setup(engine: Engine, platform: Platform) -> None:
    seed_demo(platform, with_tasks=False)  # the demo's people
    create_agent(platform, ADA, "pinger")
    create_version(platform, ERIN, "pinger", VERSION)
    activate_version(platform, ERIN, "pinger", 1, reason="first")
    submit_task(platform, OLGA, "pinger", {"host": "db-1"})


def test_a_plugin_tool_is_governed_in_a_real_worker(plugin_path: Path, migrated: Engine) -> None:
    from agent.plugins import installed_registry

    _setup(migrated, platform_for(migrated, installed_registry()))
    env = {
        "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")]),
        "STEWARD_PLUGINS": "acme,demo",
        "ACME_CALLS": os.environ["ACME_CALLS"],
    }
    listed = steward(migrated, "tools", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "acme_ping  [write, idempotent]  (acme (acme-steward 1.0))" in listed.stdout
    assert "broken" in listed.stdout and "not enabled" in listed.stdout
    everything = steward(migrated, "tools", "list", "--json", env={**env, "STEWARD_PLUGINS": ""})
    assert everything.returncode == 1  # a plugin failed to load
    failed = [p for p in json.loads(everything.stdout)["plugins"] if p["error"]]
    assert [p["name"] for p in failed] == ["broken"]

    ok(steward(migrated, "worker", "--drain", env=env, timeout=180))
    with read_session(migrated) as session:
        review = session.exec(select(Review)).one()
    assert (review.tool, review.rule_id, review.status) == (
        "acme_ping",
        "prod-pings-need-a-person",
        ReviewStatus.PENDING,
    )
    calls = Path(os.environ["ACME_CALLS"])
    assert not calls.exists()  # nothing ran before a person approved
    ok(steward(migrated, "reviews", "approve", str(review.id), "--as", "olga", env=env))
    ok(steward(migrated, "worker", "--drain", env=env, timeout=180))
    ok(steward(migrated, "worker", "--drain", env=env, timeout=180))
    assert len(calls.read_text(encoding="utf-8").splitlines()) == 1  # exactly once
    with read_session(migrated) as session:
        run = session.exec(select(Run)).one()
    assert run.status is RunStatus.SUCCEEDED
