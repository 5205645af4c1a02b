"""stargazer pacing shared by every run

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import taskpipes.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stargazer_pacing",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("next_wave_at", taskpipes.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_stargazer_pacing")),
    )


def downgrade() -> None:
    op.drop_table("stargazer_pacing")
