"""Canary releases: a share of an agent's new tasks runs on a candidate version under a guard.

- canaries: one canary release (candidate, baseline, share, guard, who/when/why, how it ended).
- agents.canary_id: the canary in progress; agents.canary_guard: the guard thresholds.
- runs.canary_id: the canary whose population a run belongs to (either arm).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 12:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'canaries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('candidate_version_id', sa.Integer(), nullable=False),
        sa.Column('baseline_version_id', sa.Integer(), nullable=False),
        sa.Column('share', sa.Integer(), nullable=False),
        sa.Column('status', sa.Enum(
            'running', 'promoted', 'aborted', 'rolled_back',
            name='canarystatus', native_enum=False, create_constraint=False, length=24,
        ), nullable=False),
        sa.Column('reason', sa.String(length=2000), nullable=False),
        sa.Column('started_by', sa.String(length=64), nullable=False),
        sa.Column('started_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('guard', sa.JSON(), nullable=False),
        sa.Column('gate', sa.JSON(), nullable=False),
        sa.Column('checked_at', storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('ended_at', storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('ended_by', sa.String(length=64), nullable=True),
        sa.Column('end_reason', sa.String(length=2000), nullable=False),
        sa.Column('verdict', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ['agent_id'], ['agents.id'], name=op.f('fk_canaries_agent_id_agents')
        ),
        sa.ForeignKeyConstraint(
            ['candidate_version_id'],
            ['agent_versions.id'],
            name=op.f('fk_canaries_candidate_version_id_agent_versions'),
        ),
        sa.ForeignKeyConstraint(
            ['baseline_version_id'],
            ['agent_versions.id'],
            name=op.f('fk_canaries_baseline_version_id_agent_versions'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_canaries')),
    )
    op.create_index(
        'ix_canaries_agent_started', 'canaries', ['agent_id', 'started_at'], unique=False
    )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('canary_id', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('canary_guard', sa.JSON(), nullable=False, server_default='{}')
        )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.alter_column('canary_guard', server_default=None)
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('canary_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_runs_canary_id'), ['canary_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_runs_canary_id_canaries'), 'canaries', ['canary_id'], ['id']
        )


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_runs_canary_id_canaries'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_runs_canary_id'))
        batch_op.drop_column('canary_id')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('canary_guard')
        batch_op.drop_column('canary_id')
    op.drop_index('ix_canaries_agent_started', table_name='canaries')
    op.drop_table('canaries')
