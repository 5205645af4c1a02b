"""runs.trace_id: the OpenTelemetry trace a run's tick started, when tracing is on

Revision ID: taskpipes_0004
Revises: taskpipes_0003
Create Date: 2026-12-06 21:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "taskpipes_0004"
down_revision = "taskpipes_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable with no default: a run made with tracing off has none.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("trace_id")
