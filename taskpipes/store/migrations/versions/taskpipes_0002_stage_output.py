"""stage_runs.output: what a stage hands on to the next one (its return value, JSON), and
runs.options: the tick's options, the first stage's input

Revision ID: taskpipes_0002
Revises: taskpipes_0001
Create Date: 2026-12-06 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "taskpipes_0002"
down_revision = "taskpipes_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable with no default: existing rows read as "no stored output" (an old run's next
    # stage reads what it read before), and the column is added without rewriting the table.
    with op.batch_alter_table("stage_runs") as batch:
        batch.add_column(sa.Column("output", sa.JSON(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("options", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("options")
    with op.batch_alter_table("stage_runs") as batch:
        batch.drop_column("output")
