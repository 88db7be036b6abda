"""The package rule: console -> agent -> storage; agent and storage never use streamlit; views,
components and the CLI go through agent (no sessions or SQL of their own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 kept, 0 broken" in result.stdout


def test_importing_every_agent_and_storage_module_loads_no_streamlit() -> None:
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for package in ("agent", "storage")
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and path.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name.removesuffix('.__init__'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'streamlit'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert len(modules) > 5


def test_no_module_imports_a_private_name_from_another() -> None:
    """A leading underscore means "this module's own": ``from x import _y`` across modules is
    a seam in the wrong place (the run loop's private class once was)."""
    import ast

    offenders = []
    for package in ("agent", "storage", "console"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    private = [
                        a.name
                        for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")
                    ]
                    if private and node.module.split(".")[0] in ("agent", "storage", "console"):
                        offenders.append(f"{path.relative_to(ROOT)}: {node.module} {private}")
    assert offenders == []
