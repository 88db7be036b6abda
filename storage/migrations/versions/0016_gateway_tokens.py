"""Bearer tokens of the MCP gateway (``steward gateway``), stored as SHA-256 hashes.

- gateway_tokens: agent, user the token acts as, token hash, label, who created it, revocation.
- ix_tasks_source: workers leave the gateway's tasks' runs alone, read on every claim through
  this index instead of a scan of every task.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'gateway_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=200), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['agent_id'], ['agents.id'], name=op.f('fk_gateway_tokens_agent_id_agents')
        ),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_gateway_tokens_user_id_users')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_gateway_tokens_token_hash')),
    )
    with op.batch_alter_table('gateway_tokens', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_gateway_tokens_agent_id'), ['agent_id'], unique=False
        )
    op.create_index('ix_tasks_source', 'tasks', ['source'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tasks_source', table_name='tasks')
    with op.batch_alter_table('gateway_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_tokens_agent_id'))
    op.drop_table('gateway_tokens')
