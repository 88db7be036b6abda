"""Demo systems of record: support (customers, orders, refunds, emails, tickets, fraud
signals) and IT access (employees, applications, access grants, password resets).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 05:23:26.786414
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('it_applications',
    sa.Column('app_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('app_id', name=op.f('pk_it_applications'))
    )
    op.create_table('it_employees',
    sa.Column('employee_id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('department', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('manager_id', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('employee_id', name=op.f('pk_it_employees')),
    sa.UniqueConstraint('email', name=op.f('uq_it_employees_email'))
    )
    op.create_table('support_customers',
    sa.Column('customer_id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('erased_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_support_customers')),
    sa.UniqueConstraint('email', name=op.f('uq_support_customers_email'))
    )
    op.create_table('support_emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.String(length=16), nullable=True),
    sa.Column('to_address', sa.String(length=254), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('sent_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_support_emails'))
    )
    with op.batch_alter_table('support_emails', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_emails_customer_id'), ['customer_id'], unique=False)

    op.create_table('support_fraud_signals',
    sa.Column('order_id', sa.String(length=16), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('fault', sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_support_fraud_signals'))
    )
    op.create_table('it_access_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('employee_id', sa.String(length=16), nullable=False),
    sa.Column('app_id', sa.String(length=32), nullable=False),
    sa.Column('access_level', sa.String(length=16), nullable=False),
    sa.Column('justification', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('granted_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['app_id'], ['it_applications.app_id'], name=op.f('fk_it_access_grants_app_id_it_applications')),
    sa.ForeignKeyConstraint(['employee_id'], ['it_employees.employee_id'], name=op.f('fk_it_access_grants_employee_id_it_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_it_access_grants')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_it_access_grants_idempotency_key'))
    )
    with op.batch_alter_table('it_access_grants', schema=None) as batch_op:
        batch_op.create_index('ix_it_access_grants_employee_app', ['employee_id', 'app_id'], unique=False)

    op.create_table('it_password_resets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.String(length=16), nullable=False),
    sa.Column('delivered_to', sa.String(length=254), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['it_employees.employee_id'], name=op.f('fk_it_password_resets_employee_id_it_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_it_password_resets'))
    )
    with op.batch_alter_table('it_password_resets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_it_password_resets_employee_id'), ['employee_id'], unique=False)

    op.create_table('support_orders',
    sa.Column('order_id', sa.String(length=16), nullable=False),
    sa.Column('customer_id', sa.String(length=16), nullable=False),
    sa.Column('item', sa.String(length=200), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('refunded_cents', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('placed_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['support_customers.customer_id'], name=op.f('fk_support_orders_customer_id_support_customers')),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_support_orders'))
    )
    with op.batch_alter_table('support_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_orders_customer_id'), ['customer_id'], unique=False)

    op.create_table('support_tickets',
    sa.Column('ticket_id', sa.String(length=16), nullable=False),
    sa.Column('customer_id', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolution', sa.String(length=500), nullable=True),
    sa.Column('opened_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['support_customers.customer_id'], name=op.f('fk_support_tickets_customer_id_support_customers')),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_support_tickets'))
    )
    with op.batch_alter_table('support_tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_tickets_customer_id'), ['customer_id'], unique=False)

    op.create_table('support_refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('order_id', sa.String(length=16), nullable=False),
    sa.Column('customer_id', sa.String(length=16), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['support_customers.customer_id'], name=op.f('fk_support_refunds_customer_id_support_customers')),
    sa.ForeignKeyConstraint(['order_id'], ['support_orders.order_id'], name=op.f('fk_support_refunds_order_id_support_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_support_refunds')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_support_refunds_idempotency_key'))
    )
    with op.batch_alter_table('support_refunds', schema=None) as batch_op:
        batch_op.create_index('ix_support_refunds_customer_created', ['customer_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('support_refunds', schema=None) as batch_op:
        batch_op.drop_index('ix_support_refunds_customer_created')

    op.drop_table('support_refunds')
    with op.batch_alter_table('support_tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_tickets_customer_id'))

    op.drop_table('support_tickets')
    with op.batch_alter_table('support_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_orders_customer_id'))

    op.drop_table('support_orders')
    with op.batch_alter_table('it_password_resets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_it_password_resets_employee_id'))

    op.drop_table('it_password_resets')
    with op.batch_alter_table('it_access_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_it_access_grants_employee_app')

    op.drop_table('it_access_grants')
    op.drop_table('support_fraud_signals')
    with op.batch_alter_table('support_emails', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_emails_customer_id'))

    op.drop_table('support_emails')
    op.drop_table('support_customers')
    op.drop_table('it_employees')
    op.drop_table('it_applications')
