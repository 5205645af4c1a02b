"""pipeline controls: pause state per pipeline, who cancelled a run and when

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import taskpipes.store.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_controls",
        sa.Column("pipeline", sa.String(length=50), nullable=False),
        sa.Column("paused_at", taskpipes.store.tables.UTCDateTime(), nullable=True),
        sa.Column("paused_by", sa.String(length=100), nullable=True),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("resumed_at", taskpipes.store.tables.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pipeline", name=op.f("pk_pipeline_controls")),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("cancelled_by", sa.String(length=100), nullable=True))
        batch.add_column(
            sa.Column("cancelled_at", taskpipes.store.tables.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("cancelled_at")
        batch.drop_column("cancelled_by")
    op.drop_table("pipeline_controls")
