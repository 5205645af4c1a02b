"""rollup_state.generation and pages_generation: the pages stage skips a rebuild that
would change nothing (a backfill's or a re-run's tick behind as_of)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollup_state") as batch:
        batch.add_column(
            sa.Column("generation", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("pages_generation", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollup_state") as batch:
        batch.drop_column("pages_generation")
        batch.drop_column("generation")
