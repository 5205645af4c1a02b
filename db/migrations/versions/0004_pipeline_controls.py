"""pipeline controls: pause state per pipeline, who cancelled a run and when

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 18:40:00

Created the kit's pipeline_controls table and the cancel columns of its runs table until
the kit took its tables over: its own first migration (taskpipes.store) makes them now,
and adds them to a database made before this revision. Kept, empty, so that databases at
0004 or later still find their revision in the history.
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
