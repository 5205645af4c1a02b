"""the kit's tables: runs, stage_runs, pipeline_controls, message_deliveries

Until this revision the application's migrations created them (its 0001 and 0004). A
database made that way already has them, with rows: each table is created only where it
is missing, so such a database is adopted as it is (the runs of one made before 0004 gain
their cancel columns). The columns, keys and indexes are those the application's
migrations made, so a new database and an adopted one have the same schema.

Times are plain `DateTime` here: it is the column type `UTCDateTime` stores, and a
migration that imports no model keeps running when the models move.

Revision ID: taskpipes_0001
Revises:
Create Date: 2026-12-06 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "taskpipes_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "runs" not in existing:
        create_runs()
    else:
        add_cancel_columns()
    if "pipeline_controls" not in existing:
        create_pipeline_controls()
    if "stage_runs" not in existing:
        create_stage_runs()
    if "message_deliveries" not in existing:
        create_message_deliveries()


def downgrade() -> None:
    op.drop_table("message_deliveries")
    op.drop_table("stage_runs")
    op.drop_table("pipeline_controls")
    op.drop_table("runs")


def create_runs() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.String(length=50), nullable=False),
        sa.Column("tick", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        *cancel_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("pipeline", "tick", name=op.f("uq_runs_pipeline_tick")),
    )
    with op.batch_alter_table("runs") as batch:
        batch.create_index("ix_runs_pipeline_status_tick", ["pipeline", "status", "tick"])


def cancel_columns() -> list[sa.Column[object]]:
    """`taskpipes cancel`'s record on a run (the application's 0004 added them)."""
    return [
        sa.Column("cancelled_by", sa.String(length=100), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
    ]


def add_cancel_columns() -> None:
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("runs")}
    missing = [column for column in cancel_columns() if column.name not in present]
    if missing:
        with op.batch_alter_table("runs") as batch:
            for column in missing:
                batch.add_column(column)


def create_pipeline_controls() -> None:
    op.create_table(
        "pipeline_controls",
        sa.Column("pipeline", sa.String(length=50), nullable=False),
        sa.Column("paused_at", sa.DateTime(), nullable=True),
        sa.Column("paused_by", sa.String(length=100), nullable=True),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("resumed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pipeline", name=op.f("pk_pipeline_controls")),
    )


def create_stage_runs() -> None:
    op.create_table(
        "stage_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("rows_written", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_stage_runs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_runs")),
        sa.UniqueConstraint("run_id", "stage", name=op.f("uq_stage_runs_run_id_stage")),
    )


def create_message_deliveries() -> None:
    op.create_table(
        "message_deliveries",
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("retries", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("first_delivered_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "retries", name=op.f("pk_message_deliveries")),
    )
