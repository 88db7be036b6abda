"""Reviews as a team works them: four-eyes counts, assignment, and undo (compensation) links.

- reviews.approvals_required, approved_by: how many distinct people must approve the call, and
  who approved its current arguments so far.
- reviews.assigned_to, assigned_at: who took the review, and since when.
- compensations: an undo of an executed call, started by a person as a new task whose one call
  is the compensating tool's, linked to the original ledger row.
- notifications: the outbox of messages per event and channel, delivered by the worker.
- notify_settings: the channels and routes an admin saved in the console.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('approvals_required', sa.Integer(), nullable=False, server_default='1')
        )
        batch_op.add_column(
            sa.Column('approved_by', sa.JSON(), nullable=False, server_default='[]')
        )
        batch_op.add_column(sa.Column('assigned_to', sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column('assigned_at', storage.types.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.alter_column('approvals_required', server_default=None)
        batch_op.alter_column('approved_by', server_default=None)
    op.create_table(
        'compensations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('original_call_id', sa.Integer(), nullable=False),
        sa.Column('original_run_id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=False),
        sa.Column('call_id', sa.String(length=64), nullable=False),
        sa.Column('tool', sa.String(length=128), nullable=False),
        sa.Column('args', sa.JSON(), nullable=False),
        sa.Column('reason', sa.String(length=2000), nullable=False),
        sa.Column('requested_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['original_call_id'],
            ['tool_calls.id'],
            name=op.f('fk_compensations_original_call_id_tool_calls'),
        ),
        sa.ForeignKeyConstraint(
            ['original_run_id'], ['runs.id'], name=op.f('fk_compensations_original_run_id_runs')
        ),
        sa.ForeignKeyConstraint(
            ['task_id'], ['tasks.id'], name=op.f('fk_compensations_task_id_tasks')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_compensations')),
    )
    with op.batch_alter_table('compensations', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_compensations_original_call_id'), ['original_call_id'], unique=False
        )
        batch_op.create_index(
            batch_op.f('ix_compensations_original_run_id'), ['original_run_id'], unique=False
        )
        batch_op.create_index(batch_op.f('ix_compensations_task_id'), ['task_id'], unique=True)
    op.create_table(
        'notifications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dedupe_key', sa.String(length=255), nullable=False),
        sa.Column('event', sa.String(length=64), nullable=False),
        sa.Column('channel', sa.String(length=64), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('body', sa.String(length=4000), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.String(length=1000), nullable=True),
        sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('delivered_at', storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_channel'), ['channel'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_notifications_dedupe_key'), ['dedupe_key'], unique=True
        )
    op.create_table(
        'notify_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source_yaml', sa.Text(), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notify_settings')),
    )


def downgrade() -> None:
    op.drop_table('notify_settings')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_dedupe_key'))
        batch_op.drop_index(batch_op.f('ix_notifications_channel'))
        batch_op.drop_index('ix_notifications_due')
    op.drop_table('notifications')
    with op.batch_alter_table('compensations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_compensations_task_id'))
        batch_op.drop_index(batch_op.f('ix_compensations_original_run_id'))
        batch_op.drop_index(batch_op.f('ix_compensations_original_call_id'))
    op.drop_table('compensations')
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_column('assigned_at')
        batch_op.drop_column('assigned_to')
        batch_op.drop_column('approved_by')
        batch_op.drop_column('approvals_required')
