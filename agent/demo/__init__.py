"""Two demo domains to govern: customer support and IT access.

Each has systems of record (``storage.models.demo``, seeded by ``agent.demo.data``), Python
tools and policy facts (``agent.demo.support``, ``agent.demo.it_access``), versions as YAML
(``agent/demo/versions/``), sample tasks (``agent.demo.tasks``) and an evaluation suite
(``agent/demo/suites/``, stored with support versions 3 and 4 by ``agent.demo.release``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.tools.registry import ToolRegistry

VERSIONS_DIR = Path(__file__).parent / "versions"
DEMO_AGENTS: dict[str, tuple[str, ...]] = {
    "support": ("support-v1", "support-v2"),
    "it-access": ("it-access-v1", "it-access-v2"),
}
"""Each demo agent's first two versions, oldest first, by file name without ``.yaml`` (support
versions 3 and 4 belong to the release demo, ``agent.demo.release``)."""


def version_yaml(name: str) -> str:
    """The YAML source of a demo version, e.g. ``version_yaml("support-v1")``.

    Raises:
        FileNotFoundError: there is no demo version of that name.
    """
    return (VERSIONS_DIR / f"{name}.yaml").read_text(encoding="utf-8")


def register(registry: ToolRegistry) -> None:
    """Register both demo domains' tools and policy facts in ``registry``, and the ``demo``
    sandbox fixture evaluation suites name to run against a copy of the seed records."""
    from agent.demo.data import seed_sandbox
    from agent.demo.it_access import register as register_it_access
    from agent.demo.support import register as register_support

    register_support(registry)
    register_it_access(registry)
    registry.register_fixture("demo", seed_sandbox)
