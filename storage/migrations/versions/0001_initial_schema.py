"""Initial schema: agents and versions, work and trace, reviews, people, audit, evals, ops.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 05:06:28.709785
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agents',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=False),
    sa.Column('domain', sa.String(length=200), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('active_version_id', sa.Integer(), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    sa.UniqueConstraint('name', name=op.f('uq_agents_name'))
    )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agents_active_version_id'), ['active_version_id'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('seq', name=op.f('uq_audit_events_seq'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_actor'), ['actor'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)

    op.create_table('circuit_breakers',
    sa.Column('tool', sa.String(length=128), nullable=False),
    sa.Column('state', sa.Enum('closed', 'open', 'half_open', name='circuitstate', native_enum=False, length=24), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('opened_count', sa.Integer(), nullable=False),
    sa.Column('opened_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error_class', sa.Enum('invalid_arguments', 'out_of_scope', 'policy_denied', 'rate_limited', 'circuit_open', 'tool_error', 'tool_timeout', 'outcome_unknown', 'budget_exhausted', 'output_invalid', 'planner_error', 'human_rejected', 'review_expired', 'internal_error', name='errorclass', native_enum=False, length=24), nullable=True),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tool', name=op.f('pk_circuit_breakers'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('password_hash', sa.String(length=256), nullable=True),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('workers',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('embedded', sa.Boolean(), nullable=False),
    sa.Column('runs_processed', sa.Integer(), nullable=False),
    sa.Column('started_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workers'))
    )
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workers_heartbeat_at'), ['heartbeat_at'], unique=False)

    op.create_table('agent_versions',
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('policy_hash', sa.String(length=64), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('source_yaml', sa.Text(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_versions_agent_id_agents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_versions')),
    sa.UniqueConstraint('agent_id', 'content_hash', name=op.f('uq_agent_versions_agent_id_content_hash')),
    sa.UniqueConstraint('agent_id', 'number', name=op.f('uq_agent_versions_agent_id_number'))
    )
    with op.batch_alter_table('agent_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_versions_agent_id'), ['agent_id'], unique=False)

    op.create_table('eval_suites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_eval_suites_agent_id_agents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_suites')),
    sa.UniqueConstraint('agent_id', 'name', name=op.f('uq_eval_suites_agent_id_name'))
    )
    op.create_table('tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('input', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'waiting_review', 'succeeded', 'failed', 'escalated', 'cancelled', name='taskstatus', native_enum=False, length=24), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('submitted_by', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_tasks_agent_id_agents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index('ix_tasks_status_created', ['status', 'priority', 'created_at'], unique=False)

    op.create_table('deployments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.Enum('activate', 'rollback', name='deploymentaction', native_enum=False, length=24), nullable=False),
    sa.Column('from_version_id', sa.Integer(), nullable=True),
    sa.Column('to_version_id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=2000), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_deployments_agent_id_agents')),
    sa.ForeignKeyConstraint(['from_version_id'], ['agent_versions.id'], name=op.f('fk_deployments_from_version_id_agent_versions')),
    sa.ForeignKeyConstraint(['to_version_id'], ['agent_versions.id'], name=op.f('fk_deployments_to_version_id_agent_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployments'))
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index('ix_deployments_agent_created', ['agent_id', 'created_at'], unique=False)

    op.create_table('eval_cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('suite_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('input', sa.JSON(), nullable=False),
    sa.Column('expect', sa.JSON(), nullable=False),
    sa.Column('shortest_path', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['suite_id'], ['eval_suites.id'], name=op.f('fk_eval_cases_suite_id_eval_suites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_cases')),
    sa.UniqueConstraint('suite_id', 'name', name=op.f('uq_eval_cases_suite_id_name'))
    )
    op.create_table('eval_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('suite_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('running', 'passed', 'failed', 'error', name='evalrunstatus', native_enum=False, length=24), nullable=False),
    sa.Column('passed', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['suite_id'], ['eval_suites.id'], name=op.f('fk_eval_runs_suite_id_eval_suites')),
    sa.ForeignKeyConstraint(['version_id'], ['agent_versions.id'], name=op.f('fk_eval_runs_version_id_agent_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_runs'))
    )
    with op.batch_alter_table('eval_runs', schema=None) as batch_op:
        batch_op.create_index('ix_eval_runs_suite_created', ['suite_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_runs_version_id'), ['version_id'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('ready', 'running', 'waiting_review', 'succeeded', 'failed', 'escalated', 'cancelled', name='runstatus', native_enum=False, length=24), nullable=False),
    sa.Column('error_class', sa.Enum('invalid_arguments', 'out_of_scope', 'policy_denied', 'rate_limited', 'circuit_open', 'tool_error', 'tool_timeout', 'outcome_unknown', 'budget_exhausted', 'output_invalid', 'planner_error', 'human_rejected', 'review_expired', 'internal_error', name='errorclass', native_enum=False, length=24), nullable=True),
    sa.Column('error_message', sa.String(length=2000), nullable=True),
    sa.Column('output', sa.JSON(), nullable=True),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claims', sa.Integer(), nullable=False),
    sa.Column('step_count', sa.Integer(), nullable=False),
    sa.Column('planner_turns', sa.Integer(), nullable=False),
    sa.Column('denial_count', sa.Integer(), nullable=False),
    sa.Column('rejection_count', sa.Integer(), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('agent_time_ms', sa.Float(), nullable=False),
    sa.Column('tokens_in', sa.Integer(), nullable=False),
    sa.Column('tokens_out', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('deadline_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_runs_agent_id_agents')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_runs_task_id_tasks')),
    sa.ForeignKeyConstraint(['version_id'], ['agent_versions.id'], name=op.f('fk_runs_version_id_agent_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_claim', ['status', 'lease_expires_at'], unique=False)
        batch_op.create_index('ix_runs_created', ['created_at'], unique=False)
        batch_op.create_index('ix_runs_listing', ['agent_id', 'version_id', 'status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_task_id'), ['task_id'], unique=False)

    op.create_table('eval_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('eval_run_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['eval_cases.id'], name=op.f('fk_eval_results_case_id_eval_cases')),
    sa.ForeignKeyConstraint(['eval_run_id'], ['eval_runs.id'], name=op.f('fk_eval_results_eval_run_id_eval_runs')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_eval_results_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_results')),
    sa.UniqueConstraint('eval_run_id', 'case_id', name=op.f('uq_eval_results_eval_run_id_case_id'))
    )
    op.create_table('steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Enum('invoke_agent', 'chat', 'apply_guardrail', 'execute_tool', 'human_approval', 'reasoning', 'proposal', 'observation', 'final_output', name='stepkind', native_enum=False, length=24), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.Enum('running', 'ok', 'error', 'escalated', 'denied', name='stepstatus', native_enum=False, length=24), nullable=False),
    sa.Column('error_class', sa.Enum('invalid_arguments', 'out_of_scope', 'policy_denied', 'rate_limited', 'circuit_open', 'tool_error', 'tool_timeout', 'outcome_unknown', 'budget_exhausted', 'output_invalid', 'planner_error', 'human_rejected', 'review_expired', 'internal_error', name='errorclass', native_enum=False, length=24), nullable=True),
    sa.Column('started_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('input', sa.JSON(), nullable=True),
    sa.Column('output', sa.JSON(), nullable=True),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['steps.id'], name=op.f('fk_steps_parent_id_steps')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_steps_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_steps')),
    sa.UniqueConstraint('run_id', 'seq', name=op.f('uq_steps_run_id_seq'))
    )
    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('step_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Enum('escalation', 'block', 'outcome_unknown', 'output_invalid', name='reviewkind', native_enum=False, length=24), nullable=False),
    sa.Column('status', sa.Enum('pending', 'blocked', 'approved', 'edited', 'rejected', 'overridden', 'expired', name='reviewstatus', native_enum=False, length=24), nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=True),
    sa.Column('tool', sa.String(length=128), nullable=True),
    sa.Column('args', sa.JSON(), nullable=True),
    sa.Column('args_hash', sa.String(length=64), nullable=True),
    sa.Column('policy_hash', sa.String(length=64), nullable=False),
    sa.Column('rule_id', sa.String(length=128), nullable=True),
    sa.Column('reason', sa.String(length=2000), nullable=False),
    sa.Column('risk', sa.Integer(), nullable=False),
    sa.Column('tier', sa.Integer(), nullable=False),
    sa.Column('override_roles', sa.JSON(), nullable=False),
    sa.Column('sla_due_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('row_version', sa.Integer(), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('applied_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_reviews_agent_id_agents')),
    sa.ForeignKeyConstraint(['parent_id'], ['reviews.id'], name=op.f('fk_reviews_parent_id_reviews')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_reviews_run_id_runs')),
    sa.ForeignKeyConstraint(['step_id'], ['steps.id'], name=op.f('fk_reviews_step_id_steps')),
    sa.ForeignKeyConstraint(['version_id'], ['agent_versions.id'], name=op.f('fk_reviews_version_id_agent_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews'))
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reviews_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index('ix_reviews_queue', ['status', 'sla_due_at'], unique=False)
        batch_op.create_index('ix_reviews_ready', ['status', 'applied_at'], unique=False)
        batch_op.create_index('ix_reviews_run', ['run_id', 'created_at'], unique=False)

    op.create_table('review_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.Enum('approve', 'edit', 'reject', 'override', 'expire', name='decisionkind', native_enum=False, length=24), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=2000), nullable=False),
    sa.Column('args', sa.JSON(), nullable=True),
    sa.Column('args_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['review_id'], ['reviews.id'], name=op.f('fk_review_decisions_review_id_reviews')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_decisions'))
    )
    with op.batch_alter_table('review_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_decisions_review_id'), ['review_id'], unique=False)

    op.create_table('tool_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=True),
    sa.Column('review_id', sa.Integer(), nullable=True),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('tool', sa.String(length=128), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('args_hash', sa.String(length=64), nullable=False),
    sa.Column('side_effect', sa.Enum('read', 'write', 'irreversible', name='sideeffect', native_enum=False, length=24), nullable=False),
    sa.Column('idempotent', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('in_flight', 'succeeded', 'failed', 'outcome_unknown', 'cancelled', name='toolcallstatus', native_enum=False, length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error_class', sa.Enum('invalid_arguments', 'out_of_scope', 'policy_denied', 'rate_limited', 'circuit_open', 'tool_error', 'tool_timeout', 'outcome_unknown', 'budget_exhausted', 'output_invalid', 'planner_error', 'human_rejected', 'review_expired', 'internal_error', name='errorclass', native_enum=False, length=24), nullable=True),
    sa.Column('error_message', sa.String(length=2000), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['review_id'], ['reviews.id'], name=op.f('fk_tool_calls_review_id_reviews')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_tool_calls_run_id_runs')),
    sa.ForeignKeyConstraint(['step_id'], ['steps.id'], name=op.f('fk_tool_calls_step_id_steps')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tool_calls')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_tool_calls_idempotency_key'))
    )
    with op.batch_alter_table('tool_calls', schema=None) as batch_op:
        batch_op.create_index('ix_tool_calls_run', ['run_id', 'created_at'], unique=False)
        batch_op.create_index('ix_tool_calls_tool_created', ['tool', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tool_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_tool_calls_tool_created')
        batch_op.drop_index('ix_tool_calls_run')

    op.drop_table('tool_calls')
    with op.batch_alter_table('review_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_decisions_review_id'))

    op.drop_table('review_decisions')
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_reviews_run')
        batch_op.drop_index('ix_reviews_ready')
        batch_op.drop_index('ix_reviews_queue')
        batch_op.drop_index(batch_op.f('ix_reviews_agent_id'))

    op.drop_table('reviews')
    op.drop_table('steps')
    op.drop_table('eval_results')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_task_id'))
        batch_op.drop_index('ix_runs_listing')
        batch_op.drop_index('ix_runs_created')
        batch_op.drop_index('ix_runs_claim')

    op.drop_table('runs')
    with op.batch_alter_table('eval_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_eval_runs_version_id'))
        batch_op.drop_index('ix_eval_runs_suite_created')

    op.drop_table('eval_runs')
    op.drop_table('eval_cases')
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index('ix_deployments_agent_created')

    op.drop_table('deployments')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_status_created')
        batch_op.drop_index(batch_op.f('ix_tasks_agent_id'))

    op.drop_table('tasks')
    op.drop_table('eval_suites')
    with op.batch_alter_table('agent_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_versions_agent_id'))

    op.drop_table('agent_versions')
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workers_heartbeat_at'))

    op.drop_table('workers')
    op.drop_table('users')
    op.drop_table('circuit_breakers')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))
        batch_op.drop_index(batch_op.f('ix_audit_events_actor'))
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    op.drop_table('audit_events')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agents_active_version_id'))

    op.drop_table('agents')
