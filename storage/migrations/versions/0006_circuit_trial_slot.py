"""Circuit breakers: the half-open trial slot lives in the database, with the time it was taken.

Workers share a tool's breaker through ``circuit_breakers``; its one half-open trial call was
held in the memory of the process that let it through, so a trial that never reported back (a
lost lease, a failed commit) kept the tool refused until that process restarted. The slot is
now this column: taken by a compare-and-set, freed when the trial settles, and free again for
any worker once ``reset_after_s`` has passed without a report.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('circuit_breakers', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('trial_started_at', storage.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('circuit_breakers', schema=None) as batch_op:
        batch_op.drop_column('trial_started_at')
