"""The emergency brake: an agent can be paused (who, when, why).

- agents.paused_at, paused_by, pause_reason: while paused_at is set, no run of the agent is
  claimed or continued.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 09:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('paused_at', storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('paused_by', sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column('pause_reason', sa.String(length=2000), nullable=False, server_default='')
        )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.alter_column('pause_reason', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('pause_reason')
        batch_op.drop_column('paused_by')
        batch_op.drop_column('paused_at')
