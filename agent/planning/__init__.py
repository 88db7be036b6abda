"""The reasoning layer: planners propose, they never act. ``build_planner`` picks one by kind."""

from __future__ import annotations

from agent.errors import VersionSpecError
from agent.planning.base import Planner
from agent.spec import PlannerSpec


def build_planner(spec: PlannerSpec) -> Planner:
    """The planner a version's ``planner.kind`` names."""
    if spec.kind == "scripted":
        from agent.planning.scripted import ScriptedPlanner

        return ScriptedPlanner(spec)
    if spec.kind == "playbook":
        from agent.planning.playbook import PlaybookPlanner

        return PlaybookPlanner(spec)
    if spec.kind == "chat":
        from agent.planning.chat import ChatPlanner

        return ChatPlanner(spec)
    raise VersionSpecError(f"planner kind {spec.kind!r} is not available in this build")
