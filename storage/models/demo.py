"""Systems of record of the two demo domains, which the demo agents' tools read and change.

Customer support: customers, orders, refunds, outbound emails, tickets, and the signals of a
(simulated, flaky) fraud service. IT access: employees, applications, access grants and password
resets. Money is stored in integer cents. ``run_id`` columns say which Steward run caused a
change; they are plain integers because these tables stand for systems outside Steward.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class SupportCustomer(SQLModel, table=True):
    __tablename__ = "support_customers"

    customer_id: str = Field(primary_key=True, max_length=16)
    name: str = Field(max_length=200)
    email: str = Field(max_length=254, unique=True)
    tier: str = Field(default="standard", max_length=16)
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SupportOrder(SQLModel, table=True):
    __tablename__ = "support_orders"

    order_id: str = Field(primary_key=True, max_length=16)
    customer_id: str = Field(foreign_key="support_customers.customer_id", index=True, max_length=16)
    item: str = Field(max_length=200)
    amount_cents: int
    refunded_cents: int = Field(default=0)
    status: str = Field(default="delivered", max_length=24)
    placed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SupportRefund(SQLModel, table=True):
    """A refund paid out. The unique idempotency key is what makes repeating a call harmless."""

    __tablename__ = "support_refunds"
    __table_args__ = (sa.Index("ix_support_refunds_customer_created", "customer_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=128, unique=True)
    order_id: str = Field(foreign_key="support_orders.order_id", max_length=16)
    customer_id: str = Field(foreign_key="support_customers.customer_id", max_length=16)
    amount_cents: int
    reason: str = Field(default="", max_length=500)
    run_id: int | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SupportEmail(SQLModel, table=True):
    """An email sent. Not deduplicated: sending is not idempotent, which is the point."""

    __tablename__ = "support_emails"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str | None = Field(default=None, max_length=16, index=True)
    to_address: str = Field(max_length=254)
    subject: str = Field(max_length=200)
    body: str = Field(sa_type=sa.Text)
    idempotency_key: str = Field(default="", max_length=128)
    run_id: int | None = Field(default=None)
    sent_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SupportTicket(SQLModel, table=True):
    __tablename__ = "support_tickets"

    ticket_id: str = Field(primary_key=True, max_length=16)
    customer_id: str = Field(foreign_key="support_customers.customer_id", index=True, max_length=16)
    subject: str = Field(max_length=200)
    status: str = Field(default="open", max_length=16)
    resolution: str | None = Field(default=None, max_length=500)
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SupportFraudSignal(SQLModel, table=True):
    """The fraud service's view of an order; ``fault`` makes the simulated service misbehave.

    ``fault`` is ``timeout`` (never answers in time), ``error`` (always fails with a retryable
    error) or ``flaky`` (fails the first attempt, answers the retry).
    """

    __tablename__ = "support_fraud_signals"

    order_id: str = Field(primary_key=True, max_length=16)
    score: int = Field(default=5)
    fault: str | None = Field(default=None, max_length=16)


class ItEmployee(SQLModel, table=True):
    __tablename__ = "it_employees"

    employee_id: str = Field(primary_key=True, max_length=16)
    name: str = Field(max_length=200)
    email: str = Field(max_length=254, unique=True)
    department: str = Field(max_length=64)
    title: str = Field(default="", max_length=100)
    manager_id: str | None = Field(default=None, max_length=16)
    status: str = Field(default="active", max_length=16)


class ItApplication(SQLModel, table=True):
    """An application access can be granted to; ``level`` is its criticality.

    Levels: ``standard``, ``sensitive`` (customer or financial data), ``critical`` (production
    infrastructure such as ``production-db``).
    """

    __tablename__ = "it_applications"

    app_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    level: str = Field(default="standard", max_length=16)
    owner: str = Field(default="", max_length=100)


class ItAccessGrant(SQLModel, table=True):
    __tablename__ = "it_access_grants"
    __table_args__ = (sa.Index("ix_it_access_grants_employee_app", "employee_id", "app_id"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=128, unique=True)
    employee_id: str = Field(foreign_key="it_employees.employee_id", max_length=16)
    app_id: str = Field(foreign_key="it_applications.app_id", max_length=32)
    access_level: str = Field(max_length=16)
    justification: str = Field(default="", max_length=500)
    status: str = Field(default="active", max_length=16)
    run_id: int | None = Field(default=None)
    granted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ItPasswordReset(SQLModel, table=True):
    """A password reset link sent. Not deduplicated: every call sends another one."""

    __tablename__ = "it_password_resets"

    id: int | None = Field(default=None, primary_key=True)
    employee_id: str = Field(foreign_key="it_employees.employee_id", index=True, max_length=16)
    delivered_to: str = Field(max_length=254)
    idempotency_key: str = Field(default="", max_length=128)
    run_id: int | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


DEMO_MODELS: tuple[type[SQLModel], ...] = (
    SupportCustomer,
    SupportOrder,
    SupportRefund,
    SupportEmail,
    SupportTicket,
    SupportFraudSignal,
    ItEmployee,
    ItApplication,
    ItAccessGrant,
    ItPasswordReset,
)
"""The demo's systems of record, in an order their foreign keys allow creating them."""
