"""The kit's tables and the declarative Base an application builds its own models on.

Times are stored as naive UTC and handed back as aware UTC datetimes. An application puts
its models on this Base, so one metadata holds the kit's tables and its own: Alembic
compares and migrates both together, and the app's tables may refer to `runs.id`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names are fixed so Alembic's batch mode on SQLite can find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC: SQLite keeps no zone, so we keep none anywhere."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where UTC is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class JSONValue(TypeDecorator[Any]):
    """JSON of any kind, a bare number included: SQLite gives a column typed JSON numeric
    affinity, so a stored `1` comes back the integer 1, which is no text to decode."""

    impl = JSON
    cache_ok = True

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        decode = self.impl_instance.result_processor(dialect, coltype)
        if decode is None:
            return None
        return lambda value: decode(value) if isinstance(value, str) else value


class Base(DeclarativeBase):
    """The declarative base of the kit's tables and of an application's models.

    One metadata for both, with a constraint naming convention (so Alembic's batch mode on
    SQLite finds constraints again), and `Mapped[datetime]` columns stored as UTC
    (`UTCDateTime`: a naive datetime is refused). An application's tables may refer to
    the kit's `runs.id`; `taskpipes db revision` migrates only the application's tables.
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}


class Run(Base):
    """One run of a pipeline for one tick; the unique key is the tick lock."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("pipeline", "tick"),
        Index("ix_runs_pipeline_status_tick", "pipeline", "status", "tick"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(50))
    tick: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str | None] = mapped_column(String(64))
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[Any | None] = mapped_column(JSON)
    # `taskpipes cancel`: who asked and when (the run's status is then "cancelled").
    cancelled_by: Mapped[str | None] = mapped_column(String(100))
    cancelled_at: Mapped[datetime | None]
    # The tick's options (on-demand parameters): the first stage's input.
    options: Mapped[Any | None] = mapped_column(JSONValue)
    # `taskpipes retry`: who last asked for the run again from its unfinished stage, and when.
    retried_by: Mapped[str | None] = mapped_column(String(100))
    retried_at: Mapped[datetime | None]
    # The OpenTelemetry trace its tick started (32 hex digits), when tracing is on.
    trace_id: Mapped[str | None] = mapped_column(String(32))


class PipelineControl(Base):
    """What an operator set on a pipeline, one row per pipeline, created at its first tick.

    Paused (`taskpipes pause`) while `paused_at` is set and `resumed_at` is not: its ticks
    are then recorded `paused` instead of run, by every worker. `resumed_at` set means
    resumed with the catch-up of the paused ticks still to do; the catch-up pass does it
    once and clears the pause. Claiming a tick locks this row, so the overlap policy sees
    one claim of a pipeline at a time.
    """

    __tablename__ = "pipeline_controls"

    pipeline: Mapped[str] = mapped_column(String(50), primary_key=True)
    paused_at: Mapped[datetime | None]
    paused_by: Mapped[str | None] = mapped_column(String(100))
    pause_reason: Mapped[str | None] = mapped_column(Text)
    resumed_at: Mapped[datetime | None]


class StageRun(Base):
    """One stage of one run: how long it took, what it wrote, what it handed on (its
    output, the next stage's input), how it last failed."""

    __tablename__ = "stage_runs"
    __table_args__ = (UniqueConstraint("run_id", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    rows_written: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # The stage's return value, handed to the next stage as its input.
    output: Mapped[Any | None] = mapped_column(JSONValue)


class MessageDelivery(Base):
    """Deliveries of one message attempt that never finished: a crash-loop counter."""

    __tablename__ = "message_deliveries"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    retries: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    actor: Mapped[str] = mapped_column(String(100))
    deliveries: Mapped[int] = mapped_column(Integer)
    first_delivered_at: Mapped[datetime]
