"""The reasoning layer: planners propose, they never act. ``build_planner`` picks one by kind."""

from __future__ import annotations

import httpx

from agent.errors import VersionSpecError
from agent.planning.base import Planner
from agent.spec import PlannerSpec


def build_planner(spec: PlannerSpec, *, http: httpx.Client) -> Planner:
    """The planner a version's ``planner.kind`` names; a chat planner sends its requests
    through ``http``, the platform's pooled client."""
    if spec.kind == "scripted":
        from agent.planning.scripted import ScriptedPlanner

        return ScriptedPlanner(spec)
    if spec.kind == "playbook":
        from agent.planning.playbook import PlaybookPlanner

        return PlaybookPlanner(spec)
    if spec.kind == "chat":
        from agent.planning.chat import ChatPlanner

        return ChatPlanner(spec, client=http)
    raise VersionSpecError(f"planner kind {spec.kind!r} is not available in this build")
