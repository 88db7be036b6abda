"""Evaluations: suites as code, repeated attempts, the hashes the activation gate checks.

- eval_suites: the suite's document, YAML source and content hash, whether it gates
  activations, its pass-rate threshold and schedule;
- eval_cases: tags, the scripted reviewer's answers, repeat count, retired cases;
- eval_runs: the hashes of the version and the suite that ran, repeat, concurrency, trigger,
  error; an index for the gate's look-up;
- eval_results: one row per attempt of a case;
- runs.eval_run_id: the evaluation a run belongs to (none: production work);
- agents.release_override_roles: who may activate a version the gate refuses.

The eval tables were created empty by 0001 and nothing wrote them before this revision.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 06:30:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Columns added to tables that may hold rows take a server default while they are added, then
# drop it, so the schema matches the models (which set defaults in Python).
ADDED: tuple[tuple[str, sa.Column[Any]], ...] = (
    ('eval_suites', sa.Column('document', sa.JSON(), nullable=False, server_default='{}')),
    ('eval_suites', sa.Column('source_yaml', sa.Text(), nullable=False, server_default='')),
    ('eval_suites', sa.Column('content_hash', sa.String(64), nullable=False, server_default='')),
    ('eval_suites', sa.Column('required', sa.Boolean(), nullable=False, server_default=sa.false())),
    ('eval_suites', sa.Column('threshold', sa.Float(), nullable=False, server_default='1.0')),
    ('eval_suites', sa.Column('schedule', sa.String(128), nullable=True)),
    ('eval_suites', sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True)),
    ('eval_suites', sa.Column('last_scheduled_at', sa.DateTime(timezone=True), nullable=True)),
    ('eval_cases', sa.Column('tags', sa.JSON(), nullable=False, server_default='[]')),
    ('eval_cases', sa.Column('reviewer', sa.JSON(), nullable=False, server_default='[]')),
    ('eval_cases', sa.Column('repeat', sa.Integer(), nullable=False, server_default='1')),
    ('eval_cases', sa.Column('retired', sa.Boolean(), nullable=False, server_default=sa.false())),
    ('eval_runs', sa.Column('version_hash', sa.String(64), nullable=False, server_default='')),
    ('eval_runs', sa.Column('suite_hash', sa.String(64), nullable=False, server_default='')),
    ('eval_runs', sa.Column('repeat', sa.Integer(), nullable=False, server_default='1')),
    ('eval_runs', sa.Column('concurrency', sa.Integer(), nullable=False, server_default='1')),
    ('eval_runs', sa.Column('trigger', sa.String(32), nullable=False, server_default='manual')),
    ('eval_runs', sa.Column('error', sa.String(2000), nullable=True)),
    ('eval_results', sa.Column('attempt', sa.Integer(), nullable=False, server_default='1')),
    ('agents', sa.Column('release_override_roles', sa.JSON(), nullable=False, server_default='[]')),
)


def upgrade() -> None:
    import storage.types

    for table, column in ADDED:
        with op.batch_alter_table(table) as batch:
            if column.name in ('updated_at', 'last_scheduled_at'):
                column = sa.Column(
                    column.name, storage.types.UTCDateTime(timezone=True), nullable=True
                )
            batch.add_column(column)
    op.execute("UPDATE eval_suites SET updated_at = created_at")
    with op.batch_alter_table('eval_suites') as batch:
        batch.alter_column(
            'updated_at', existing_type=storage.types.UTCDateTime(timezone=True), nullable=False
        )
    for table, column in ADDED:
        if column.server_default is not None:
            with op.batch_alter_table(table) as batch:
                batch.alter_column(
                    column.name, existing_type=column.type, server_default=None
                )
    with op.batch_alter_table('eval_results') as batch:
        batch.drop_constraint('uq_eval_results_eval_run_id_case_id', type_='unique')
        batch.create_unique_constraint(
            'uq_eval_results_eval_run_id_case_id_attempt', ['eval_run_id', 'case_id', 'attempt']
        )
    with op.batch_alter_table('eval_runs') as batch:
        batch.create_index(
            'ix_eval_runs_gate', ['version_hash', 'suite_id', 'created_at'], unique=False
        )
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('eval_run_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(
            'fk_runs_eval_run_id_eval_runs', 'eval_runs', ['eval_run_id'], ['id']
        )
        batch.create_index('ix_runs_eval_run_id', ['eval_run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.drop_index('ix_runs_eval_run_id')
        batch.drop_constraint('fk_runs_eval_run_id_eval_runs', type_='foreignkey')
        batch.drop_column('eval_run_id')
    with op.batch_alter_table('eval_runs') as batch:
        batch.drop_index('ix_eval_runs_gate')
    with op.batch_alter_table('eval_results') as batch:
        batch.drop_constraint('uq_eval_results_eval_run_id_case_id_attempt', type_='unique')
        batch.create_unique_constraint(
            'uq_eval_results_eval_run_id_case_id', ['eval_run_id', 'case_id']
        )
    for table, column in reversed(ADDED):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column.name)
