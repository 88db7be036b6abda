"""Policy replays: what a candidate policy would have decided on an agent's recorded decisions.

- policy_replays: the candidate (a version, or a document's policy hash), the window, how many
  decisions flipped and the saved report; attached to the candidate version when it is one.

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-29 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0010'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'policy_replays',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=True),
        sa.Column('candidate', sa.String(length=200), nullable=False),
        sa.Column('candidate_policy_hash', sa.String(length=64), nullable=False),
        sa.Column('since', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('until', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('flipped', sa.Integer(), nullable=False),
        sa.Column('report', sa.JSON(), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['agent_id'], ['agents.id'], name=op.f('fk_policy_replays_agent_id_agents')
        ),
        sa.ForeignKeyConstraint(
            ['version_id'],
            ['agent_versions.id'],
            name=op.f('fk_policy_replays_version_id_agent_versions'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_replays')),
    )
    op.create_index(
        'ix_policy_replays_agent_created',
        'policy_replays',
        ['agent_id', 'created_at'],
        unique=False,
    )
    op.create_index(
        op.f('ix_policy_replays_version_id'), 'policy_replays', ['version_id'], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_policy_replays_version_id'), table_name='policy_replays')
    op.drop_index('ix_policy_replays_agent_created', table_name='policy_replays')
    op.drop_table('policy_replays')
