"""Steward's schema: one module per area, all tables registered on ``SQLModel.metadata``.

Naming conventions are fixed here so that Alembic (and its SQLite batch mode) can address every
constraint by a stable name.
"""

from __future__ import annotations

from sqlmodel import SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

from storage.models.agents import Agent, AgentVersion, Deployment  # noqa: E402
from storage.models.audit import AuditEvent  # noqa: E402
from storage.models.demo import (  # noqa: E402
    ItAccessGrant,
    ItApplication,
    ItEmployee,
    ItPasswordReset,
    SupportCustomer,
    SupportEmail,
    SupportFraudSignal,
    SupportOrder,
    SupportRefund,
    SupportTicket,
)
from storage.models.evals import EvalCase, EvalResult, EvalRun, EvalSuite  # noqa: E402
from storage.models.gateway import GatewayToken  # noqa: E402
from storage.models.limits import LimitReservation  # noqa: E402
from storage.models.notifications import Notification, NotifySettings  # noqa: E402
from storage.models.operations import CircuitBreaker, RateLimitEntry, Worker  # noqa: E402
from storage.models.people import User, UserSession  # noqa: E402
from storage.models.release import Canary, PolicyReplay  # noqa: E402
from storage.models.reviews import Review, ReviewDecision  # noqa: E402
from storage.models.telemetry import TelemetryCursor, TelemetryRun  # noqa: E402
from storage.models.work import Compensation, Run, Step, Task, ToolCall  # noqa: E402

metadata = SQLModel.metadata

__all__ = [
    "Agent",
    "AgentVersion",
    "AuditEvent",
    "Canary",
    "CircuitBreaker",
    "Compensation",
    "Deployment",
    "EvalCase",
    "EvalResult",
    "EvalRun",
    "EvalSuite",
    "GatewayToken",
    "ItAccessGrant",
    "ItApplication",
    "ItEmployee",
    "ItPasswordReset",
    "LimitReservation",
    "Notification",
    "NotifySettings",
    "PolicyReplay",
    "RateLimitEntry",
    "Review",
    "ReviewDecision",
    "Run",
    "Step",
    "SupportCustomer",
    "SupportEmail",
    "SupportFraudSignal",
    "SupportOrder",
    "SupportRefund",
    "SupportTicket",
    "Task",
    "TelemetryCursor",
    "TelemetryRun",
    "ToolCall",
    "User",
    "UserSession",
    "Worker",
    "metadata",
]
