"""Policy counters and bounded retries: limit reservations, and failed claims per run.

- limit_reservations: what each counted call reserved against a version's ``policy.counters``,
  written with the decision that allowed it, so a limit holds across concurrent runs;
- runs.failed_claims: claims whose processing raised, so a run failing on every claim ends
  ``failed`` instead of being claimed for ever.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'limit_reservations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('counter_key', sa.String(length=400), nullable=False),
        sa.Column('counter', sa.String(length=64), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('call_id', sa.String(length=64), nullable=False),
        sa.Column('idempotency_key', sa.String(length=128), nullable=False),
        sa.Column('amount', sa.Float(), nullable=False),
        sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('released_at', storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['agent_id'], ['agents.id'], name=op.f('fk_limit_reservations_agent_id_agents')
        ),
        sa.ForeignKeyConstraint(
            ['run_id'], ['runs.id'], name=op.f('fk_limit_reservations_run_id_runs')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_limit_reservations')),
    )
    op.create_index(
        'ix_limit_reservations_window',
        'limit_reservations',
        ['counter_key', 'created_at'],
        unique=False,
    )
    op.create_index(
        op.f('ix_limit_reservations_idempotency_key'),
        'limit_reservations',
        ['idempotency_key'],
        unique=False,
    )
    with op.batch_alter_table('runs') as batch:
        batch.add_column(
            sa.Column('failed_claims', sa.Integer(), nullable=False, server_default='0')
        )


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.drop_column('failed_claims')
    op.drop_index(
        op.f('ix_limit_reservations_idempotency_key'), table_name='limit_reservations'
    )
    op.drop_index('ix_limit_reservations_window', table_name='limit_reservations')
    op.drop_table('limit_reservations')
