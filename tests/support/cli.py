"""Running the real ``steward`` command in a subprocess, and checking how it exited."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy.engine import URL, Engine


def steward(
    target: Engine | URL | str,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m console.cli ARGS`` against the database of ``target``."""
    url = target.url if isinstance(target, Engine) else target
    rendered = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    environ = {k: v for k, v in os.environ.items() if k != "STEWARD_USER"}
    environ["STEWARD_DATABASE_URL"] = rendered
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args],
        env={**environ, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The standard output of a command that must have exited 0."""
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Exit status 2 with one line on stderr containing ``fragment`` (and no traceback)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("steward: ")
    assert fragment in lines[0]
