"""System status for everyone signed in: where the data lives, its schema revision, its
durability, table sizes and worker heartbeats."""

from __future__ import annotations

from agent.actors import READ_ROLES, Actor, require
from agent.platform import Platform
from storage.engine import read_session
from storage.queries.system import SystemStatus, WorkerHeartbeat, system_status

__all__ = ["SystemStatus", "WorkerHeartbeat", "status"]


def status(platform: Platform, actor: Actor) -> SystemStatus:
    """The database (URL masked), schema revision against the code's, row counts and workers.

    Raises:
        Forbidden: the actor holds no role.
    """
    require(actor, READ_ROLES, "read the system status")
    with read_session(platform.engine) as session:
        return system_status(session=session)
