"""Rate-limit counters in the database, shared by every worker that uses it.

Without a shared store each worker process counted calls on its own, so two workers let
through twice what a version's ``rate_limits`` allow.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rate_limit_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('cost', sa.Integer(), nullable=False),
    sa.Column('expires_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_limit_entries'))
    )
    with op.batch_alter_table('rate_limit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_rate_limit_entries_window', ['key', 'expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rate_limit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_limit_entries_window')

    op.drop_table('rate_limit_entries')
