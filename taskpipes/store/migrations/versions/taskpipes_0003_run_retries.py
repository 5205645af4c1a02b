"""runs.retried_by, runs.retried_at: who asked `taskpipes retry` for a run, and when

Revision ID: taskpipes_0003
Revises: taskpipes_0002
Create Date: 2026-12-06 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "taskpipes_0003"
down_revision = "taskpipes_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable with no default: a run never retried has neither, and no table is rewritten.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("retried_by", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("retried_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("retried_at")
        batch.drop_column("retried_by")
