"""language_stats: per language totals served by /api/languages

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import taskpipes.store.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "language_stats",
        sa.Column("rank", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("language", sa.String(length=100), nullable=True),
        sa.Column("repositories", sa.Integer(), nullable=False),
        sa.Column("stars", sa.BigInteger(), nullable=False),
        sa.Column("stars_gained_24h", sa.BigInteger(), nullable=True),
        sa.Column("stars_gained_7d", sa.BigInteger(), nullable=True),
        sa.Column("as_of", taskpipes.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("rank", name=op.f("pk_language_stats")),
    )


def downgrade() -> None:
    op.drop_table("language_stats")
