"""Console indexes: KPI aggregates over steps and tool calls, reviews by creation time, audit
log filters by target.

The console benchmark (bench/console.py, 100,000 runs and 1,000,000 steps) showed each of these
turning a full table scan into an index range scan:

- steps (kind, run_id): a range's guardrail decisions, for policy decisions per rule;
- steps (error_class, kind, run_id): the error breakdown, read from the index alone;
- tool_calls (tool, duration_ms, status, attempts): tool health and latency percentiles,
  read from the index alone instead of the wide ledger rows;
- reviews (created_at): review speed and SLA compliance over a time range;
- audit_events (target_type, target_id): the audit log filtered by what was acted on;
- runs (error_class, created_at): the run list filtered by a (rare) error class.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ('ix_steps_kind_run', 'steps', ['kind', 'run_id']),
    ('ix_steps_errors', 'steps', ['error_class', 'kind', 'run_id']),
    ('ix_tool_calls_health', 'tool_calls', ['tool', 'duration_ms', 'status', 'attempts']),
    ('ix_reviews_created', 'reviews', ['created_at']),
    ('ix_audit_events_target', 'audit_events', ['target_type', 'target_id']),
    ('ix_runs_errors', 'runs', ['error_class', 'created_at']),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
