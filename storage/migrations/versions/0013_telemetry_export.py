"""Trace export: the exporter's cursor and how far each run's trace has been sent.

- telemetry_cursors: one row per exporter (its turn's lease, the low-water run id, the
  installation key trace ids are derived with, the backoff after a failed send).
- telemetry_runs: per run, the steps sent and the segment planned but not yet accepted.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 12:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'telemetry_cursors',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('installation', sa.String(length=64), nullable=False),
        sa.Column('low_water_run_id', sa.Integer(), nullable=False),
        sa.Column('lease_owner', sa.String(length=128), nullable=True),
        sa.Column('lease_expires_at', storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=500), nullable=False),
        sa.Column('retry_at', storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('sent_at', storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_telemetry_cursors')),
    )
    op.create_table(
        'telemetry_runs',
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('sent_seq', sa.Integer(), nullable=False),
        sa.Column('planned_seq', sa.Integer(), nullable=False),
        sa.Column('segment_seq', sa.Integer(), nullable=False),
        sa.Column('previous_segment_seq', sa.Integer(), nullable=False),
        sa.Column('planned_status', sa.String(length=24), nullable=False),
        sa.Column('segments', sa.Integer(), nullable=False),
        sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['run_id'], ['runs.id'], name=op.f('fk_telemetry_runs_run_id_runs')
        ),
        sa.PrimaryKeyConstraint('run_id', name=op.f('pk_telemetry_runs')),
    )


def downgrade() -> None:
    op.drop_table('telemetry_runs')
    op.drop_table('telemetry_cursors')
