"""Seed records for the demo systems of record, inserted idempotently by ``seed_records``.

The records are fixed (no randomness): the sample tasks in ``agent.demo.tasks`` name these
customers, orders, tickets, employees and applications, and some records exist to exercise a
governance path, e.g. the orders whose fraud check times out or fails.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from storage.models.demo import (
    DEMO_MODELS,
    ItAccessGrant,
    ItApplication,
    ItEmployee,
    SupportCustomer,
    SupportFraudSignal,
    SupportOrder,
    SupportTicket,
)

# fmt: off
_FIRST = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Imani", "Jonas", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen",
    "Xavi", "Yara", "Zane", "Aiko", "Bruno", "Carmen", "Diego",
)
_LAST = (
    "Lovelace", "Okafor", "Martin", "Patel", "Rossi", "Haddad", "Hopper", "Silva", "Mensah", "Berg",
    "Tanaka", "Walsh", "Cohen", "Keller", "Ivanova", "Novak", "Reyes", "Duarte", "Nasser", "Singh",
    "Farouk", "Lind", "Zhao", "Ortega", "Moreau", "Fischer", "Sato", "Costa", "Ruiz", "Alvarez",
)
# fmt: on
_TIERS = ("standard", "standard", "gold", "standard", "platinum")
# Customers whose mail provider accepts messages but never confirms them (see send_email).
_EMAIL_OVERRIDES = {1028: "bruno.costa@slowpost.example"}

# order number -> (customer number, item, amount in cents, status); the rest are generated.
_ORDERS: dict[int, tuple[int, str, int, str]] = {
    5001: (1001, "Ceramic mug set", 4500, "delivered"),
    5002: (1002, "Wireless mouse", 8990, "delivered"),
    5003: (1003, "Desk lamp", 10000, "delivered"),
    5004: (1004, "Office chair", 34900, "delivered"),
    5005: (1005, "Standing desk", 78000, "delivered"),
    5006: (1006, "32-inch monitor", 100000, "delivered"),
    5007: (1007, "Laptop", 245000, "delivered"),
    5008: (1008, "Espresso machine", 189900, "delivered"),
    5009: (1009, "Backpack", 5900, "delivered"),
    5010: (1010, "Phone case", 3200, "delivered"),
    5011: (1010, "USB-C cable", 1900, "delivered"),
    5012: (1010, "Screen protector", 2400, "delivered"),
    5013: (1010, "Charging dock", 3900, "delivered"),
    5014: (1011, "Bookshelf", 12000, "shipped"),
    5015: (1012, "Throw blanket", 6450, "shipped"),
    5016: (1013, "Notebook pack", 2800, "delivered"),
    5017: (1014, "Water bottle", 4200, "delivered"),
    5018: (1015, "Desk organizer", 3000, "delivered"),
    5040: (1021, "Headphones", 6000, "delivered"),
    5041: (1022, "Keyboard", 7200, "delivered"),
    5042: (1023, "Webcam", 3800, "delivered"),
    5043: (1024, "Gift card bundle", 9500, "delivered"),
    5044: (1025, "Running shoes", 6500, "delivered"),
    5045: (1026, "Coffee grinder", 11000, "shipped"),
}
_ITEMS = ("Tea kettle", "Yoga mat", "Plant pot", "Table lamp", "Bluetooth speaker", "Cushion")
# order number -> (fraud score, fault of the simulated fraud service)
_FRAUD_SPECIAL: dict[int, tuple[int, str | None]] = {
    5040: (12, "timeout"),
    5041: (15, "error"),
    5042: (9, "flaky"),
    5043: (92, None),
}
# Extra tickets for the customer whose four refunds in a day exercise the daily limit.
_EXTRA_TICKETS = {9031: 1010, 9032: 1010, 9033: 1010}

_DEPARTMENTS = ("Engineering", "Finance", "Sales", "Support", "People", "Marketing")
_TITLES = ("Engineer", "Analyst", "Account executive", "Support agent", "Recruiter", "Designer")
_EMPLOYEE_STATUS = {2019: "terminated", 2020: "on_leave"}
APPLICATIONS: tuple[tuple[str, str, str, str], ...] = (
    ("wiki", "Company wiki", "standard", "IT"),
    ("jira", "Issue tracker", "standard", "Engineering"),
    ("github", "Source code hosting", "standard", "Engineering"),
    ("email", "Email and calendar", "standard", "IT"),
    ("crm", "Customer relationship management", "sensitive", "Sales"),
    ("payroll", "Payroll", "sensitive", "Finance"),
    ("billing", "Billing", "sensitive", "Finance"),
    ("aws-console", "Cloud console", "critical", "Platform"),
    ("production-db", "Production database", "critical", "Platform"),
)
_GRANTS = (
    (2001, "github", "admin"),
    (2001, "jira", "admin"),
    (2002, "jira", "standard"),
    (2003, "wiki", "standard"),
    (2013, "crm", "standard"),
    (2013, "email", "standard"),
    (2016, "billing", "read"),
)
_EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def customer_rows() -> list[SupportCustomer]:
    rows = []
    for i in range(30):
        first, last = _FIRST[i], _LAST[i]
        rows.append(
            SupportCustomer(
                customer_id=f"C-{1001 + i}",
                name=f"{first} {last}",
                email=_EMAIL_OVERRIDES.get(1001 + i, f"{first.lower()}.{last.lower()}@example.com"),
                tier=_TIERS[i % len(_TIERS)],
                created_at=_EPOCH + timedelta(days=i),
            )
        )
    return rows


def order_rows() -> list[SupportOrder]:
    rows = []
    for number in range(5001, 5046):
        customer, item, cents, status = _ORDERS.get(
            number,
            (
                1017 + number % 14,
                _ITEMS[number % len(_ITEMS)],
                1500 + (number * 731) % 15000,
                "delivered",
            ),
        )
        rows.append(
            SupportOrder(
                order_id=f"O-{number}",
                customer_id=f"C-{customer}",
                item=item,
                amount_cents=cents,
                status=status,
                placed_at=_EPOCH + timedelta(days=30 + number % 40),
            )
        )
    return rows


def ticket_rows() -> list[SupportTicket]:
    pairs = [(9000 + n - 1000, n) for n in range(1001, 1031)] + list(_EXTRA_TICKETS.items())
    return [
        SupportTicket(
            ticket_id=f"T-{ticket}",
            customer_id=f"C-{customer}",
            subject=f"Request from customer C-{customer}",
            opened_at=_EPOCH + timedelta(days=60 + ticket % 7),
        )
        for ticket, customer in pairs
    ]


def fraud_rows() -> list[SupportFraudSignal]:
    rows = []
    for number in range(5001, 5046):
        score, fault = _FRAUD_SPECIAL.get(number, (3 + (number * 37) % 40, None))
        rows.append(SupportFraudSignal(order_id=f"O-{number}", score=score, fault=fault))
    return rows


def employee_rows() -> list[ItEmployee]:
    rows = []
    for i in range(20):
        number = 2001 + i
        first, last = _FIRST[-(i + 1)], _LAST[i + 3]
        rows.append(
            ItEmployee(
                employee_id=f"E-{number}",
                name=f"{first} {last}",
                email=f"{first.lower()}.{last.lower()}@corp.example",
                department=_DEPARTMENTS[i % len(_DEPARTMENTS)],
                title=_TITLES[i % len(_TITLES)],
                manager_id=None if number == 2001 else "E-2001",
                status=_EMPLOYEE_STATUS.get(number, "active"),
            )
        )
    return rows


def application_rows() -> list[ItApplication]:
    return [
        ItApplication(app_id=app, name=name, level=level, owner=owner)
        for app, name, level, owner in APPLICATIONS
    ]


def grant_rows() -> list[ItAccessGrant]:
    return [
        ItAccessGrant(
            idempotency_key=f"seed:E-{employee}:{app}",
            employee_id=f"E-{employee}",
            app_id=app,
            access_level=level,
            justification="initial provisioning",
            granted_at=_EPOCH,
        )
        for employee, app, level in _GRANTS
    ]


def seed_records(session: Session) -> int:
    """Insert every seed record that is not there yet; the caller commits.

    Running it again inserts nothing, and records changed by demo runs (a refunded order, a
    closed ticket) are left as they are.

    Args:
        session: an open session in the caller's transaction.

    Returns:
        How many rows were inserted.
    """
    inserted = 0
    batches: list[list[Any]] = [
        customer_rows(),
        employee_rows(),
        application_rows(),
        order_rows(),
        ticket_rows(),
        fraud_rows(),
    ]
    for batch in batches:
        for row in batch:
            if session.get(type(row), _primary_key(row)) is None:
                session.add(row)
                inserted += 1
        session.flush()
    keys = {row.idempotency_key for row in grant_rows()}
    existing = set(
        session.exec(
            select(ItAccessGrant.idempotency_key).where(
                col(ItAccessGrant.idempotency_key).in_(keys)
            )
        )
    )
    for grant in grant_rows():
        if grant.idempotency_key not in existing:
            session.add(grant)
            inserted += 1
    session.flush()
    return inserted


def _primary_key(row: SQLModel) -> Any:
    (column,) = sa.inspect(type(row)).primary_key
    return getattr(row, column.key)


def seed_sandbox(engine: Engine) -> None:
    """Create the demo's systems of record in an evaluation's sandbox and fill them with the
    seed records (the ``demo`` fixture)."""
    tables = [
        cast(sa.Table, model.__table__)  # type: ignore[attr-defined]
        for model in DEMO_MODELS
    ]
    SQLModel.metadata.create_all(engine, tables=tables)
    with Session(engine) as session:
        seed_records(session)
        session.commit()
