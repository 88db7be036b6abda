"""The IT-access demo domain: tools over the directory and IAM tables, and its policy's facts.

Its tools run inline, like the support tools: short transactions with a bounded wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from agent.demo.once import write_once
from agent.errors import ToolError
from agent.tools.base import ToolContext
from agent.tools.fencing import fenced_session
from agent.tools.python import PythonTool, tool
from storage.engine import read_session
from storage.enums import SideEffect
from storage.models.demo import ItAccessGrant, ItApplication, ItEmployee, ItPasswordReset
from storage.types import utcnow

if TYPE_CHECKING:
    from agent.tools.registry import FactContext, ToolRegistry

EMPLOYEE_ID = {"type": "string", "pattern": "^E-[0-9]{4}$"}
APP_ID = {"type": "string", "pattern": "^[a-z][a-z0-9-]{1,31}$"}
ACCESS_LEVEL = {"enum": ["read", "standard", "admin"]}
EMAIL = {"type": "string", "format": "email", "maxLength": 254}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _result(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _employee(session: Session, employee_id: str) -> ItEmployee:
    employee = session.get(ItEmployee, employee_id)
    if employee is None:
        raise ToolError(f"no employee {employee_id!r} exists in the directory; check the id")
    return employee


def _active(employee: ItEmployee, action: str) -> None:
    if employee.status != "active":
        raise ToolError(
            f"employee {employee.employee_id} is {employee.status.replace('_', ' ')}; "
            f"{action} is refused for accounts that are not active"
        )


@tool(
    "lookup_employee",
    args_schema=_object({"employee_id": EMPLOYEE_ID}, ["employee_id"]),
    result_schema=_result(
        {
            "employee_id": EMPLOYEE_ID,
            "name": {"type": "string"},
            "email": {"type": "string"},
            "department": {"type": "string"},
            "title": {"type": "string"},
            "status": {"enum": ["active", "on_leave", "terminated"]},
            "manager_id": {"type": ["string", "null"]},
            "grants": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"app_id": APP_ID, "access_level": ACCESS_LEVEL},
                    "required": ["app_id", "access_level"],
                },
            },
        },
        ["employee_id", "name", "email", "status", "grants"],
    ),
    data_sources=("directory", "iam"),
    inline=True,
)
def lookup_employee(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Look up an employee in the directory, with the access they currently hold."""
    with read_session(ctx.engine) as session:
        employee = _employee(session, args["employee_id"])
        grants = session.exec(
            select(ItAccessGrant)
            .where(ItAccessGrant.employee_id == employee.employee_id)
            .where(ItAccessGrant.status == "active")
            .order_by(col(ItAccessGrant.app_id))
        ).all()
        return {
            "employee_id": employee.employee_id,
            "name": employee.name,
            "email": employee.email,
            "department": employee.department,
            "title": employee.title,
            "status": employee.status,
            "manager_id": employee.manager_id,
            "grants": [{"app_id": g.app_id, "access_level": g.access_level} for g in grants],
        }


def _grant_answer(grant: ItAccessGrant, duplicate: bool) -> dict[str, Any]:
    return {
        "grant_id": grant.id,
        "employee_id": grant.employee_id,
        "app_id": grant.app_id,
        "access_level": grant.access_level,
        "status": grant.status,
        "duplicate": duplicate,
    }


@tool(
    "grant_access",
    args_schema=_object(
        {
            "employee_id": EMPLOYEE_ID,
            "app_id": APP_ID,
            "access_level": ACCESS_LEVEL,
            "justification": {"type": "string", "maxLength": 500},
        },
        ["employee_id", "app_id", "access_level"],
    ),
    result_schema=_result(
        {
            "grant_id": {"type": "integer"},
            "employee_id": EMPLOYEE_ID,
            "app_id": APP_ID,
            "access_level": ACCESS_LEVEL,
            "status": {"const": "active"},
            "duplicate": {"type": "boolean"},
        },
        ["grant_id", "employee_id", "app_id", "access_level", "status", "duplicate"],
    ),
    side_effect=SideEffect.WRITE,
    idempotent=True,
    data_sources=("iam",),
    compensating_tool="revoke_access",
    # Undone by revoking what the grant gave: the employee's access to that application.
    compensation_args={
        "employee_id": "result.employee_id",
        "app_id": "result.app_id",
        "reason": '"undo of grant " + string(result.grant_id)',
    },
    inline=True,
)
def grant_access(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Grant an active employee access to an application at a level (read, standard, admin).

    Idempotent: a repeated call with the same idempotency key returns the first grant, and an
    identical grant that is already active is returned instead of a second one.
    """

    def grant(session: Session) -> tuple[ItAccessGrant, bool]:
        employee = _employee(session, args["employee_id"])
        _active(employee, "granting access")
        if session.get(ItApplication, args["app_id"]) is None:
            raise ToolError(f"no application {args['app_id']!r} exists; check the app id")
        same = session.exec(
            select(ItAccessGrant)
            .where(ItAccessGrant.employee_id == employee.employee_id)
            .where(ItAccessGrant.app_id == args["app_id"])
            .where(ItAccessGrant.access_level == args["access_level"])
            .where(ItAccessGrant.status == "active")
        ).first()
        if same is not None:
            return same, True
        new = ItAccessGrant(
            idempotency_key=ctx.idempotency_key,
            employee_id=employee.employee_id,
            app_id=args["app_id"],
            access_level=args["access_level"],
            justification=str(args.get("justification", ""))[:500],
            run_id=ctx.run_id,
        )
        session.add(new)
        return new, False

    return write_once(ctx, ItAccessGrant, grant, _grant_answer)


@tool(
    "revoke_access",
    args_schema=_object(
        {"employee_id": EMPLOYEE_ID, "app_id": APP_ID, "reason": {"type": "string"}},
        ["employee_id", "app_id"],
    ),
    result_schema=_result(
        {"employee_id": EMPLOYEE_ID, "app_id": APP_ID, "revoked": {"type": "integer"}},
        ["employee_id", "app_id", "revoked"],
    ),
    side_effect=SideEffect.WRITE,
    idempotent=True,
    data_sources=("iam",),
    inline=True,
)
def revoke_access(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Revoke every active grant an employee holds on an application. Repeating it is harmless."""
    with fenced_session(ctx) as session:
        employee = _employee(session, args["employee_id"])
        grants = session.exec(
            select(ItAccessGrant)
            .where(ItAccessGrant.employee_id == employee.employee_id)
            .where(ItAccessGrant.app_id == args["app_id"])
            .where(ItAccessGrant.status == "active")
            .with_for_update()
        ).all()
        now = utcnow()
        for grant in grants:
            grant.status = "revoked"
            grant.revoked_at = now
            session.add(grant)
        return {
            "employee_id": employee.employee_id,
            "app_id": args["app_id"],
            "revoked": len(grants),
        }


@tool(
    "reset_password",
    args_schema=_object(
        {"employee_id": EMPLOYEE_ID, "deliver_to": EMAIL},
        ["employee_id"],
    ),
    result_schema=_result(
        {
            "reset_id": {"type": "integer"},
            "employee_id": EMPLOYEE_ID,
            "delivered_to": {"type": "string"},
            "status": {"const": "sent"},
        },
        ["reset_id", "employee_id", "delivered_to", "status"],
    ),
    side_effect=SideEffect.WRITE,
    idempotent=False,
    data_sources=("directory",),
    inline=True,
    not_undoable_because=(
        "a reset link that was sent cannot be recalled; it expires on its own, and the "
        "employee's old password no longer works either way"
    ),
)
def reset_password(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Send an active employee a password reset link (to their directory email unless
    ``deliver_to`` says otherwise). Not idempotent: every call sends another link."""
    with fenced_session(ctx) as session:
        employee = _employee(session, args["employee_id"])
        _active(employee, "a password reset")
        reset = ItPasswordReset(
            employee_id=employee.employee_id,
            delivered_to=args.get("deliver_to") or employee.email,
            idempotency_key=ctx.idempotency_key,
            run_id=ctx.run_id,
        )
        session.add(reset)
        session.flush()
        return {
            "reset_id": reset.id,
            "employee_id": employee.employee_id,
            "delivered_to": reset.delivered_to,
            "status": "sent",
        }


TOOLS: tuple[PythonTool, ...] = (
    lookup_employee,
    grant_access,
    revoke_access,
    reset_password,
)


# Facts are read on the policy path of every call whose rules name them: Core statements on the
# call's shared fact connection.
_APPS: sa.Table = ItApplication.__table__  # type: ignore[attr-defined]
_EMPLOYEES: sa.Table = ItEmployee.__table__  # type: ignore[attr-defined]
_APP_LEVEL = sa.select(_APPS.c.level).where(_APPS.c.app_id == sa.bindparam("app_id"))


def app_level(ctx: FactContext) -> str | None:
    """The criticality of the application the call names: standard, sensitive or critical."""
    app_id = ctx.value("args.app_id")
    if not isinstance(app_id, str):
        return None
    level: str | None = (
        ctx.connection().execute(_APP_LEVEL, {"app_id": app_id}).scalar_one_or_none()
    )
    return level


def employee_status(ctx: FactContext) -> str | None:
    """The directory status of the employee the call names: active, on_leave or terminated
    (rules keep that employee to the task's own)."""
    return _employee_field(ctx, "status")


def employee_email(ctx: FactContext) -> str | None:
    """The directory email address of the employee the call names."""
    return _employee_field(ctx, "email")


def _employee_field(ctx: FactContext, name: str) -> str | None:
    employee_id = ctx.value("args.employee_id")
    if not isinstance(employee_id, str):
        return None
    column = _EMPLOYEES.c[name]
    value = (
        ctx.connection()
        .execute(
            sa.select(column).where(_EMPLOYEES.c.employee_id == sa.bindparam("employee_id")),
            {"employee_id": employee_id},
        )
        .scalar_one_or_none()
    )
    return None if value is None else str(value)


# Each fact with the inputs it trusts: the objects the call names, which the policy binds to
# the task's own employee.
FACTS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "app_level": (app_level, ("args.app_id",)),
    "employee_status": (employee_status, ("args.employee_id",)),
    "employee_email": (employee_email, ("args.employee_id",)),
}


def register(registry: ToolRegistry) -> None:
    """Register the IT-access tools and facts."""
    for demo_tool in TOOLS:
        registry.register_tool(demo_tool)
    for name, (provider, inputs) in FACTS.items():
        registry.register_fact(name, provider, inputs=inputs)
