"""Who is acting, and the one place role checks are spelled out.

Every service function takes an ``Actor`` and calls ``require`` itself, so hiding a button in
the console is never the only thing standing between a role and an action.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.errors import Forbidden
from storage.enums import Role


@dataclass(frozen=True)
class Actor:
    """A signed-in person (or the system itself) with the roles they hold."""

    name: str
    roles: frozenset[Role]

    @classmethod
    def of(cls, name: str, roles: Iterable[Role | str]) -> Actor:
        return cls(name, frozenset(Role(r) for r in roles))

    def has_any(self, roles: Iterable[Role | str]) -> bool:
        return any(Role(r) in self.roles for r in roles)


# The worker and the SLA clock act as "system": it holds no role, so no service function that
# requires a role accepts it by accident.
SYSTEM = Actor("system", frozenset())

# Who may do what. Managers read everything; only operators decide reviews (managers may
# override a block where the rule names them); engineers manage versions; admins manage users.
READ_ROLES = frozenset(Role)
SUBMIT_ROLES = frozenset({Role.OPERATOR, Role.MANAGER, Role.ENGINEER})
DECIDE_ROLES = frozenset({Role.OPERATOR})
VERSION_ROLES = frozenset({Role.ENGINEER})
ROLLBACK_ROLES = frozenset({Role.ENGINEER, Role.OPERATOR})
"""Rolling back to the version active before is the emergency lever: operators pull it too."""
USER_ADMIN_ROLES = frozenset({Role.ADMIN})
AUDIT_ROLES = frozenset({Role.MANAGER, Role.ADMIN})
# Operators work the review queue; managers read it (and override where a rule names them).
QUEUE_ROLES = frozenset({Role.OPERATOR, Role.MANAGER})
# Undoing an executed call (a new call through the gate, reviewed like any other): the people
# who work the queue.
UNDO_ROLES = QUEUE_ROLES
# Managers watch KPIs; engineers read them per version to decide what to activate or roll back.
KPI_ROLES = frozenset({Role.MANAGER, Role.ENGINEER})


def require(actor: Actor, allowed: Iterable[Role | str], action: str) -> None:
    """Raise ``Forbidden`` unless ``actor`` holds one of ``allowed``.

    Args:
        actor: who is acting.
        allowed: roles any one of which permits the action.
        action: what is being attempted, in words ("approve review 12").
    """
    allowed_roles = sorted(Role(r).value for r in allowed)
    if not actor.has_any(allowed_roles):
        held = ", ".join(sorted(r.value for r in actor.roles)) or "no role"
        raise Forbidden(
            f"{actor.name} ({held}) may not {action}; it needs the role "
            f"{' or '.join(allowed_roles)}."
        )
