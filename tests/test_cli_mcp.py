"""The MCP commands as a person types them: ``steward mcp inspect`` prints pins that
``steward versions create`` accepts, and ``steward gateway token create`` is for admins."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import yaml
from sqlalchemy.engine import Engine

from storage.engine import write_session
from storage.models import User
from tests.support.cli import ok, refused, steward
from tests.support.runtime import install_agent, scripted_version

ROOT = Path(__file__).resolve().parent.parent
COMMAND = f"{shlex.quote(sys.executable)} -m tests.support.mcp_server"


def test_inspect_prints_an_entry_a_version_accepts(migrated: Engine, tmp_path: Path) -> None:
    listing = ok(steward(migrated, "mcp", "inspect", "--command", COMMAND, "--name", "shop"))
    assert "refund" in listing
    assert "irreversible" in listing
    printed = ok(
        steward(
            migrated,
            "mcp",
            "inspect",
            "--command",
            COMMAND,
            "--name",
            "shop",
            "--yaml",
            "--env",
            "EFFECTS_FILE=/dev/null",
        )
    )
    entry = yaml.safe_load(printed)["mcp_servers"][0]
    assert entry["env"] == {"EFFECTS_FILE": "/dev/null"}
    with write_session(migrated) as session:
        session.add(User(name="erin", roles=["engineer"]))
    install_agent(migrated, "shop", scripted_version([]))
    version = {
        "planner": {"kind": "scripted"},
        "tools": [],
        "mcp_servers": [entry],
        "policy": {"default": "allow"},
    }
    path = tmp_path / "version.yaml"
    path.write_text(yaml.safe_dump(version))
    ok(steward(migrated, "versions", "create", "shop", str(path), "--as", "erin"))
    entry["tools"] = []
    path.write_text(yaml.safe_dump(version))
    refused(
        steward(migrated, "versions", "create", "shop", str(path), "--as", "erin"),
        "pins no tools",
    )


def test_gateway_tokens_are_created_by_admins_only(migrated: Engine) -> None:
    with write_session(migrated) as session:
        session.add(User(name="ada", roles=["admin"]))
        session.add(User(name="bot", roles=["operator"]))
    install_agent(migrated, "shop", scripted_version([]))
    refused(
        steward(migrated, "gateway", "token", "create", "shop", "--user", "bot", "--as", "bot"),
        "",
    )
    token = ok(
        steward(migrated, "gateway", "token", "create", "shop", "--user", "bot", "--as", "ada")
    ).strip()
    assert token.startswith("stw_")
    refused(steward(migrated, "gateway", "token", "revoke", "x", "--as", "ada"), "not a token id")
