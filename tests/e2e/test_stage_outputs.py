"""Stage outputs handed on, refused outputs, and failures that show at once: the stage API
of README "Write your own pipeline", on the in-process broker (both databases where the
hand-off is read back by SQL of its own)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from taskpipes import Context, Pipeline, Retries, Stage, registry
from taskpipes.declare.pipeline import MAX_OUTPUT_BYTES
from taskpipes.runtime.current import current_broker
from taskpipes.runtime.runner import Outcome, ensure_workers, run_tick
from taskpipes.store.database import begin
from taskpipes.store.tables import StageRun

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
# Quick retries, so a test of retried failures waits milliseconds, not minutes.
QUICK = Retries(max=2, min_backoff_ms=10, max_backoff_ms=20)


@pytest.fixture
def declare() -> Iterator[Any]:
    """Declare test pipelines on the process's registry, withdrawn afterwards."""
    added: list[Pipeline] = []

    def _declare(pipeline: Pipeline) -> Pipeline:
        registry.declare(pipeline)
        added.append(pipeline)
        ensure_workers(current_broker())
        return pipeline

    yield _declare
    for pipeline in added:
        registry._declared.pop(pipeline.name, None)


def outputs(run_id: int) -> dict[str, Any]:
    with begin() as session:
        query = select(StageRun.stage, StageRun.output).where(StageRun.run_id == run_id)
        return dict(session.execute(query).all())


def test_each_stage_gets_the_output_of_the_one_before(app_env, database_url, declare) -> None:
    # Given three stages: the first gets the tick's options, each returns what it made
    app_env(database_url)
    seen: dict[str, Any] = {}

    def numbers(ctx: Context) -> list[int]:
        seen["numbers"] = ctx.input
        return list(range(ctx.input["n"]))

    def total(ctx: Context) -> dict[str, int]:
        seen["total"] = ctx.input
        return {"total": sum(ctx.input), "count": len(ctx.input)}

    def keep(ctx: Context) -> str:
        seen["keep"] = ctx.input
        return "kept"

    backend = database_url.split(":", 1)[0].split("+", 1)[0]  # one actor name per database
    pipeline = declare(
        Pipeline(
            f"handing_on_{backend}",
            stages=(Stage("numbers", numbers), Stage("total", total), Stage("keep", keep)),
            tick_options=("n",),
        )
    )

    # When a tick runs with an option
    outcome = run_tick(pipeline, T0, 60, options={"n": 4})

    # Then each stage got what the one before returned, read back from its record
    assert outcome.status == "succeeded", outcome.error
    assert seen == {"numbers": {"n": 4}, "total": [0, 1, 2, 3], "keep": {"total": 6, "count": 4}}
    assert outputs(outcome.run_id) == {
        "numbers": [0, 1, 2, 3],
        "total": {"total": 6, "count": 4},
        "keep": "kept",
    }


def test_a_scalar_output_is_handed_on_as_it_was(app_env, sqlite_url, declare) -> None:
    # Given a stage returning a bare number (SQLite's JSON column would store an integer)
    app_env(sqlite_url)
    seen: list[Any] = []

    def one(ctx: Context) -> float:
        seen.append(ctx.input)  # the first stage of a tick with no options: {}
        return 1.5

    pipeline = declare(
        Pipeline(
            "scalar_output",
            stages=(Stage("one", one), Stage("two", lambda ctx: seen.append(ctx.input))),
            jitter_s=0.01,  # its first stage in a message of its own: its input read back
        )
    )

    outcome = run_tick(pipeline, T0, 60)

    assert outcome.status == "succeeded", outcome.error
    assert seen == [{}, 1.5]
    assert outputs(outcome.run_id) == {"one": 1.5, "two": None}


@pytest.mark.parametrize(
    ("kind", "returned", "says"),
    [
        ("set", {1, 2}, "returned what is not JSON"),
        ("nan", float("nan"), "returned what is not JSON"),
        ("big", "x" * MAX_OUTPUT_BYTES, f"over the {MAX_OUTPUT_BYTES}-byte limit"),
    ],
)
def test_an_output_that_cannot_be_handed_on_fails_the_run_at_once(
    app_env, sqlite_url, declare, kind: str, returned: Any, says: str
) -> None:
    app_env(sqlite_url)
    pipeline = declare(
        Pipeline(
            f"refused_{kind}",  # an actor name per case: the broker keeps its actors
            stages=(Stage("make", lambda ctx: returned), Stage("after", lambda ctx: None)),
            retries=QUICK,
        )
    )

    outcome = run_tick(pipeline, T0, 60)

    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith("make: OutputRefused: stage 'make' returned")
    assert says in outcome.error and str(MAX_OUTPUT_BYTES) in outcome.error
    assert stage_attempts(outcome) == {"make": 1}


def test_an_outside_stage_has_no_session(app_env, sqlite_url, declare) -> None:
    app_env(sqlite_url)
    pipeline = declare(
        Pipeline("sessionless", stages=(Stage("fetch", lambda ctx: ctx.session, outside=True),))
    )

    outcome = run_tick(pipeline, T0, 60)

    assert outcome.status == "failed"
    assert "runs outside any transaction (outside=True)" in (outcome.error or "")


def test_a_deterministic_error_fails_at_once_with_one_line(
    app_env, sqlite_url, declare, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a stage whose own code meets a malformed item, with the default retry budget
    app_env(sqlite_url)

    def parse(ctx: Context) -> None:
        item: dict[str, Any] = {"title": "no id"}
        item["id"]

    pipeline = declare(Pipeline("malformed", stages=(Stage("parse", parse),)))

    # When it runs
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="taskpipes"):
        outcome = run_tick(pipeline, T0, 60)
    took = time.monotonic() - started

    # Then it fails on its first attempt, in well under the retries' minute, and says so in
    # one line: stage, run, attempt, cause, and that no retry comes
    assert outcome.status == "failed"
    assert outcome.error == "parse: KeyError: 'id'"
    assert took < 5, took
    lines = [r.getMessage() for r in caplog.records if "malformed stage parse" in r.getMessage()]
    assert lines == [
        f"malformed stage parse, run {outcome.run_id}: attempt 1 of 6 failed: KeyError: 'id'; "
        "KeyError is not retried: the run fails"
    ]


def test_a_transient_error_logs_each_attempt_and_when_the_next_comes(
    app_env, sqlite_url, declare, caplog: pytest.LogCaptureFixture
) -> None:
    app_env(sqlite_url)

    def flaky(ctx: Context) -> None:
        raise ConnectionError("feed.example.org refused the connection")

    pipeline = declare(Pipeline("flaky", stages=(Stage("fetch", flaky),), retries=QUICK))

    with caplog.at_level(logging.WARNING, logger="taskpipes"):
        outcome = run_tick(pipeline, T0, 60)

    assert outcome.status == "failed"
    lines = [r.getMessage() for r in caplog.records if "flaky stage fetch" in r.getMessage()]
    cause = "ConnectionError: feed.example.org refused the connection"
    where = f"flaky stage fetch, run {outcome.run_id}"
    assert lines == [
        f"{where}: attempt 1 of 3 failed: {cause}; next attempt in 0.005-0.01 s",
        f"{where}: attempt 2 of 3 failed: {cause}; next attempt in 0.01-0.02 s",
        f"{where}: attempt 3 of 3 failed: {cause}; no attempt left: the run fails",
    ]


def test_a_stage_may_retry_what_would_fail_at_once(app_env, sqlite_url, declare) -> None:
    app_env(sqlite_url)
    tries: list[int] = []

    def second_time_lucky(ctx: Context) -> None:
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("not yet valid")

    pipeline = declare(
        Pipeline(
            "retries_values",
            stages=(Stage("only", second_time_lucky, fail_fast=()),),
            retries=QUICK,
        )
    )

    outcome = run_tick(pipeline, T0, 60)

    assert outcome.status == "succeeded", outcome.error
    assert len(tries) == 2


def stage_attempts(outcome: Outcome) -> dict[str, int]:
    with begin() as session:
        query = select(StageRun.stage, StageRun.attempts).where(StageRun.run_id == outcome.run_id)
        return dict(session.execute(query).all())


def test_rows_declared_are_counted_once_in_the_record_and_the_metric(
    app_env, sqlite_url, declare
) -> None:
    # Given a stage that writes to two tables and fails once after declaring its rows
    app_env(sqlite_url)
    tries: list[int] = []

    def write_twice(ctx: Context) -> None:
        ctx.wrote(3, "rows_test_a")
        ctx.wrote(2, "rows_test_b")
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("lost before the commit")

    pipeline = declare(Pipeline("rows_counted", stages=(Stage("w", write_twice),), retries=QUICK))
    before = {table: written(table) for table in ("rows_test_a", "rows_test_b")}

    outcome = run_tick(pipeline, T0, 60)

    # Then the rolled-back attempt counted nothing: 5 in the record, 3 + 2 in the metric
    assert outcome.status == "succeeded", outcome.error
    assert [rows for _, _, _, rows in outcome.stages] == [5]
    after = {table: written(table) - before[table] for table in before}
    assert after == {"rows_test_a": 3, "rows_test_b": 2}


def written(table: str) -> float:
    return REGISTRY.get_sample_value("taskpipes_rows_written_total", {"table": table}) or 0.0
