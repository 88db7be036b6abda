"""The console served for real: ``streamlit run console/server.py`` in a subprocess on a free
local port, as ``make run`` serves it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_console(url: str, log_path: Path, **env: str) -> Iterator[str]:
    """Serve the console on ``url``'s database until the block ends; yields its address.

    ``env`` adds ``STEWARD_*`` settings (the embedded worker is on unless it says otherwise).
    The server's output goes to ``log_path``.
    """
    port = free_port()
    environ = {
        **os.environ,
        "STEWARD_DATABASE_URL": url,
        "STEWARD_EMBEDDED_WORKER": "1",
        **env,
    }
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "streamlit"),
                "run",
                "console/server.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        address = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(address, server)
            yield address
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


def _wait_until_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the console exited with {server.returncode} while starting")
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).text.strip() == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the console did not answer on {url} within {STARTUP_S:.0f} s")
