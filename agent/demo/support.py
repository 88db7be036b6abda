"""The customer-support demo domain: tools over the support tables, and the facts its policy reads.

Amounts cross the tool boundary in dollars and are stored in cents. The fraud check talks to a
simulated fraud service with the faults the seed data marks on orders: ``timeout`` (the service
hangs on that order), ``error`` (it cannot score that order and says so) and ``flaky`` (it fails
the first attempt with a passing 503).

Every tool here runs inline (in the worker's thread): each is one short transaction whose only
wait is the database's busy timeout, and the simulated slow services give up by themselves at
the call's timeout.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, func, select

from agent.demo.once import write_once
from agent.errors import Health, ToolError, ToolTimeout
from agent.tools.base import ToolContext
from agent.tools.fencing import fenced_session
from agent.tools.python import PythonTool, tool
from storage.engine import read_session
from storage.enums import SideEffect
from storage.models.demo import (
    SupportCustomer,
    SupportEmail,
    SupportFraudSignal,
    SupportOrder,
    SupportRefund,
    SupportTicket,
)
from storage.types import utcnow

if TYPE_CHECKING:
    from agent.tools.registry import FactContext, ToolRegistry

CUSTOMER_ID = {"type": "string", "pattern": "^C-[0-9]{4}$"}
ORDER_ID = {"type": "string", "pattern": "^O-[0-9]{4}$"}
TICKET_ID = {"type": "string", "pattern": "^T-[0-9]{4}$"}
MONEY = {"type": "number", "minimum": 0}
EMAIL = {"type": "string", "format": "email", "maxLength": 254}
MAX_REFUND = 100_000


# Mail domains whose relay accepts a message and then never confirms it.
UNCONFIRMED_MAIL_DOMAINS = frozenset({"slowpost.example"})


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _result(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _dollars(cents: int) -> float:
    return round(cents / 100, 2)


def _missing(what: str, key: str) -> ToolError:
    return ToolError(f"no {what} {key!r} exists; check the id")


@tool(
    "lookup_customer",
    args_schema=_object({"customer_id": CUSTOMER_ID}, ["customer_id"]),
    result_schema=_result(
        {
            "customer_id": CUSTOMER_ID,
            "name": {"type": "string"},
            "email": {"type": "string"},
            "tier": {"enum": ["standard", "gold", "platinum"]},
            "erased": {"type": "boolean"},
            "open_tickets": {"type": "integer", "minimum": 0},
        },
        ["customer_id", "name", "email", "tier", "erased", "open_tickets"],
    ),
    data_sources=("crm", "tickets"),
    inline=True,
)
def lookup_customer(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Look up a customer by id: name, email address on file, tier and open tickets."""
    with read_session(ctx.engine) as session:
        customer = session.get(SupportCustomer, args["customer_id"])
        if customer is None:
            raise _missing("customer", args["customer_id"])
        open_tickets = session.exec(
            select(func.count())
            .select_from(SupportTicket)
            .where(SupportTicket.customer_id == customer.customer_id)
            .where(SupportTicket.status == "open")
        ).one()
        return {
            "customer_id": customer.customer_id,
            "name": customer.name,
            "email": customer.email,
            "tier": customer.tier,
            "erased": customer.erased_at is not None,
            "open_tickets": int(open_tickets),
        }


@tool(
    "lookup_order",
    args_schema=_object({"order_id": ORDER_ID}, ["order_id"]),
    result_schema=_result(
        {
            "order_id": ORDER_ID,
            "customer_id": CUSTOMER_ID,
            "item": {"type": "string"},
            "amount": MONEY,
            "refunded": MONEY,
            "refundable": MONEY,
            "status": {"type": "string"},
            "placed_at": {"type": "string", "format": "date-time"},
        },
        ["order_id", "customer_id", "amount", "refunded", "refundable", "status"],
    ),
    data_sources=("orders",),
    inline=True,
)
def lookup_order(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Look up an order by id: customer, item, amount, what was refunded so far, status."""
    with read_session(ctx.engine) as session:
        order = session.get(SupportOrder, args["order_id"])
        if order is None:
            raise _missing("order", args["order_id"])
        return {
            "order_id": order.order_id,
            "customer_id": order.customer_id,
            "item": order.item,
            "amount": _dollars(order.amount_cents),
            "refunded": _dollars(order.refunded_cents),
            "refundable": _dollars(order.amount_cents - order.refunded_cents),
            "status": order.status,
            "placed_at": order.placed_at.isoformat(),
        }


def _refund_answer(refund: SupportRefund, duplicate: bool) -> dict[str, Any]:
    return {
        "refund_id": refund.id,
        "order_id": refund.order_id,
        "customer_id": refund.customer_id,
        "amount": _dollars(refund.amount_cents),
        "status": "issued",
        "duplicate": duplicate,
        "created_at": refund.created_at.isoformat(),
    }


@tool(
    "issue_refund",
    args_schema=_object(
        {
            "customer_id": CUSTOMER_ID,
            "order_id": ORDER_ID,
            "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_REFUND},
            "reason": {"type": "string", "maxLength": 500},
        },
        ["customer_id", "order_id", "amount"],
    ),
    result_schema=_result(
        {
            "refund_id": {"type": "integer"},
            "order_id": ORDER_ID,
            "customer_id": CUSTOMER_ID,
            "amount": MONEY,
            "status": {"const": "issued"},
            "duplicate": {"type": "boolean"},
        },
        ["refund_id", "order_id", "amount", "status", "duplicate"],
    ),
    side_effect=SideEffect.WRITE,
    idempotent=True,
    data_sources=("payments", "orders"),
    inline=True,
    not_undoable_because=(
        "a refund is money already paid back to the customer through the payment processor; "
        "it cannot be recalled, only charged again, which needs the customer's consent, so "
        "contact the customer instead"
    ),
)
def issue_refund(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Refund an amount in dollars on a customer's order to the original payment method.

    Idempotent: a repeated call with the same idempotency key returns the first refund and pays
    nothing again.
    """
    cents = round(float(args["amount"]) * 100)

    def pay(session: Session) -> tuple[SupportRefund, bool]:
        order = session.exec(
            select(SupportOrder).where(SupportOrder.order_id == args["order_id"]).with_for_update()
        ).first()
        if order is None:
            raise _missing("order", args["order_id"])
        if order.customer_id != args["customer_id"]:
            raise ToolError(
                f"order {order.order_id} belongs to another customer, not "
                f"{args['customer_id']}; refund the customer's own order"
            )
        refundable = order.amount_cents - order.refunded_cents
        if cents > refundable:
            raise ToolError(
                f"{args['amount']:.2f} exceeds what is refundable on order {order.order_id} "
                f"({_dollars(refundable):.2f} of {_dollars(order.amount_cents):.2f})"
            )
        refund = SupportRefund(
            idempotency_key=ctx.idempotency_key,
            order_id=order.order_id,
            customer_id=order.customer_id,
            amount_cents=cents,
            reason=str(args.get("reason", ""))[:500],
            run_id=ctx.run_id,
        )
        order.refunded_cents += cents
        order.status = (
            "refunded" if order.refunded_cents == order.amount_cents else "partially_refunded"
        )
        session.add(refund)
        session.add(order)
        return refund, False

    return write_once(ctx, SupportRefund, pay, _refund_answer)


@tool(
    "send_email",
    args_schema=_object(
        {
            "customer_id": CUSTOMER_ID,
            "to": EMAIL,
            "subject": {"type": "string", "minLength": 1, "maxLength": 200},
            "body": {"type": "string", "minLength": 1, "maxLength": 5000},
        },
        ["customer_id", "to", "subject", "body"],
    ),
    result_schema=_result(
        {"email_id": {"type": "integer"}, "to": {"type": "string"}, "status": {"const": "sent"}},
        ["email_id", "to", "status"],
    ),
    side_effect=SideEffect.WRITE,
    idempotent=False,
    data_sources=("email",),
    inline=True,
    not_undoable_because="an email that was sent cannot be unsent; send a correction instead",
)
def send_email(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Send an email about a customer's case. Not idempotent: every call sends another email."""
    with fenced_session(ctx) as session:
        email = SupportEmail(
            customer_id=args["customer_id"],
            to_address=args["to"],
            subject=args["subject"],
            body=args["body"],
            idempotency_key=ctx.idempotency_key,
            run_id=ctx.run_id,
        )
        session.add(email)
        session.flush()
        answer = {"email_id": email.id, "to": email.to_address, "status": "sent"}
    if args["to"].rpartition("@")[2].lower() in UNCONFIRMED_MAIL_DOMAINS:
        # The message is stored (sent) before the relay stalls: exactly the case where a retry
        # would send it twice and only a person can tell whether the customer got it.
        time.sleep(ctx.timeout_s)
        raise ToolTimeout(
            f"the mail relay took the message but did not confirm it within {ctx.timeout_s:g}s"
        )
    return answer


@tool(
    "close_ticket",
    args_schema=_object(
        {
            "ticket_id": TICKET_ID,
            "resolution": {"type": "string", "minLength": 1, "maxLength": 500},
        },
        ["ticket_id", "resolution"],
    ),
    result_schema=_result(
        {
            "ticket_id": TICKET_ID,
            "status": {"const": "closed"},
            "already_closed": {"type": "boolean"},
        },
        ["ticket_id", "status", "already_closed"],
    ),
    side_effect=SideEffect.WRITE,
    idempotent=True,
    data_sources=("tickets",),
    inline=True,
)
def close_ticket(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Close a support ticket with a resolution note. Closing a closed ticket changes nothing."""
    with fenced_session(ctx) as session:
        ticket = session.get(SupportTicket, args["ticket_id"], with_for_update=True)
        if ticket is None:
            raise _missing("ticket", args["ticket_id"])
        already = ticket.status == "closed"
        if not already:
            ticket.status = "closed"
            ticket.resolution = args["resolution"]
            ticket.closed_at = utcnow()
            session.add(ticket)
        return {"ticket_id": ticket.ticket_id, "status": "closed", "already_closed": already}


@tool(
    "delete_customer_data",
    args_schema=_object(
        {"customer_id": CUSTOMER_ID, "reason": {"type": "string", "minLength": 1}},
        ["customer_id", "reason"],
    ),
    result_schema=_result(
        {"customer_id": CUSTOMER_ID, "erased": {"const": True}}, ["customer_id", "erased"]
    ),
    side_effect=SideEffect.IRREVERSIBLE,
    idempotent=True,
    data_sources=("crm",),
    inline=True,
    not_undoable_because="the customer's personal data was erased for good",
)
def delete_customer_data(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Erase a customer's personal data for good (name and email). Cannot be undone."""
    with fenced_session(ctx) as session:
        customer = session.get(SupportCustomer, args["customer_id"], with_for_update=True)
        if customer is None:
            raise _missing("customer", args["customer_id"])
        if customer.erased_at is None:
            customer.name = "(erased)"
            customer.email = f"erased+{customer.customer_id.lower()}@invalid.example"
            customer.erased_at = utcnow()
            session.add(customer)
        return {"customer_id": customer.customer_id, "erased": True}


def _risk(score: int) -> str:
    if score >= 70:
        return "high"
    return "medium" if score >= 30 else "low"


@tool(
    "check_fraud_score",
    args_schema=_object({"order_id": ORDER_ID}, ["order_id"]),
    result_schema=_result(
        {
            "order_id": ORDER_ID,
            "score": {"type": "integer", "minimum": 0, "maximum": 100},
            "risk": {"enum": ["low", "medium", "high"]},
        },
        ["order_id", "score", "risk"],
    ),
    data_sources=("fraud",),
    inline=True,
)
def check_fraud_score(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Ask the fraud service how risky an order is (score 0-100, risk low/medium/high)."""
    order_id = args["order_id"]
    with read_session(ctx.engine) as session:
        if session.get(SupportOrder, order_id) is None:
            raise _missing("order", order_id)
        signal = session.get(SupportFraudSignal, order_id)
        score, fault = (10, None) if signal is None else (signal.score, signal.fault)
    if fault == "timeout":
        # The service accepts the connection and never answers; a client gives up at its
        # timeout, and the executor's own bound may cut this sooner. A timeout says the
        # service is unhealthy; that only this order meets it, the breaker learns by itself.
        time.sleep(ctx.timeout_s)
        raise ToolTimeout(f"the fraud service did not answer within {ctx.timeout_s:g}s")
    if fault == "error":
        # The service is up and refuses this one order, as a real one answers 422 for a record
        # it cannot score: a retry would get the same answer, and the refusal says nothing
        # about the service's health, so it must not count toward the tool's circuit breaker.
        raise ToolError(
            f"the fraud service answered HTTP 422 Unprocessable Entity: it cannot score order "
            f"{order_id}; a person must judge the fraud risk",
            health=Health.HEALTHY,
        )
    if fault == "flaky" and ctx.attempt == 1:
        raise ToolError("the fraud service answered HTTP 503 Service Unavailable", retryable=True)
    return {"order_id": order_id, "score": score, "risk": _risk(score)}


TOOLS: tuple[PythonTool, ...] = (
    lookup_customer,
    lookup_order,
    issue_refund,
    send_email,
    close_ticket,
    delete_customer_data,
    check_fraud_score,
)


# Facts are read on the policy path of every call whose rules name them, so they are prebuilt
# Core statements on a plain connection: a session would cost more than the query.
_REFUNDS: sa.Table = SupportRefund.__table__  # type: ignore[attr-defined]
_CUSTOMERS: sa.Table = SupportCustomer.__table__  # type: ignore[attr-defined]
_ORDERS: sa.Table = SupportOrder.__table__  # type: ignore[attr-defined]
_TICKETS: sa.Table = SupportTicket.__table__  # type: ignore[attr-defined]
_REFUNDS_SINCE = (
    sa.select(sa.func.count())
    .select_from(_REFUNDS)
    .where(_REFUNDS.c.customer_id == sa.bindparam("customer_id"))
    .where(_REFUNDS.c.created_at >= sa.bindparam("since"))
)
_EMAIL_ON_FILE = sa.select(_CUSTOMERS.c.email).where(
    _CUSTOMERS.c.customer_id == sa.bindparam("customer_id")
)
_ORDER_OWNER = sa.select(_ORDERS.c.customer_id).where(
    _ORDERS.c.order_id == sa.bindparam("order_id")
)
_TICKET_OWNER = sa.select(_TICKETS.c.customer_id).where(
    _TICKETS.c.ticket_id == sa.bindparam("ticket_id")
)


def refunds_today(ctx: FactContext) -> int | None:
    """Refunds the systems of record paid today (UTC) to the task's customer, across all runs
    and outside Steward too (the policy's atomic limit is the ``refunds_today`` counter)."""
    customer_id = ctx.value("task.customer_id")
    if not isinstance(customer_id, str):
        return None
    start = datetime.combine(utcnow().date(), clock_time.min, tzinfo=UTC)
    return int(_scalar(ctx, _REFUNDS_SINCE, customer_id=customer_id, since=start))


def customer_email(ctx: FactContext) -> str | None:
    """The email address on file for the task's customer (None if unknown)."""
    customer_id = ctx.value("task.customer_id")
    if not isinstance(customer_id, str):
        return None
    email: str | None = _scalar(ctx, _EMAIL_ON_FILE, customer_id=customer_id)
    return email


def order_customer(ctx: FactContext) -> str | None:
    """Whose order the call names: the customer it belongs to (None for no or unknown order)."""
    order_id = ctx.value("args.order_id")
    if not isinstance(order_id, str):
        return None
    owner: str | None = _scalar(ctx, _ORDER_OWNER, order_id=order_id)
    return owner


def ticket_customer(ctx: FactContext) -> str | None:
    """Whose ticket the call names (None for no or unknown ticket)."""
    ticket_id = ctx.value("args.ticket_id")
    if not isinstance(ticket_id, str):
        return None
    owner: str | None = _scalar(ctx, _TICKET_OWNER, ticket_id=ticket_id)
    return owner


def _scalar(ctx: FactContext, statement: sa.Select[Any], **params: Any) -> Any:
    return ctx.connection().execute(statement, params).scalar_one_or_none()


# Each fact with the inputs it trusts: the task's own customer, or the object the call names.
FACTS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "refunds_today": (refunds_today, ("task.customer_id",)),
    "customer_email": (customer_email, ("task.customer_id",)),
    "order_customer": (order_customer, ("args.order_id",)),
    "ticket_customer": (ticket_customer, ("args.ticket_id",)),
}


def register(registry: ToolRegistry) -> None:
    """Register the support tools and facts."""
    for demo_tool in TOOLS:
        registry.register_tool(demo_tool)
    for name, (provider, inputs) in FACTS.items():
        registry.register_fact(name, provider, inputs=inputs)
