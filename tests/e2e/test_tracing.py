"""One trace per run, on RabbitMQ and PostgreSQL: `taskpipes run` asks for a run of a
4-stage pipeline whose stage b defers once and stage c fails once (tests.traced_pipelines);
every span of it, from the command through each stage attempt, shares one trace id, and
each stage attempt's parent chain leads back to the command's span."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from db import schema as migrate
from taskpipes.store.tables import Run
from tests.processes import VENV_BIN, process, service_env, taskpipes

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

# How long the spans of a finished run may take to reach the files (the worker ends the
# last stage's span after the run is recorded closed).
SPANS_DEADLINE_S = 30
Span = dict[str, Any]


def read_spans(directory: Path) -> list[Span]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("spans-*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def wait_for_spans(directory: Path, done: Callable[[list[Span]], bool]) -> list[Span]:
    deadline = time.monotonic() + SPANS_DEADLINE_S
    while True:
        spans = read_spans(directory)
        if done(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def attrs(span: Span) -> dict[str, Any]:
    return span.get("attributes") or {}


def processed(spans: list[Span], actor: str) -> list[Span]:
    """The spans of the attempts at `actor`'s messages, first attempt first."""
    found = [s for s in spans if s["name"] == f"process {actor}"]
    return sorted(found, key=lambda s: s["start_time"])


def run_spans(spans: list[Span]) -> list[Span]:
    """The command's span and every attempt's, of the traced pipeline."""
    return [
        s
        for s in spans
        if attrs(s).get("taskpipes.pipeline") == "traced" and not s["name"].startswith("send")
    ]


def parent_of(span: Span, by_id: dict[str, Span]) -> Span | None:
    return by_id.get(span.get("parent_id") or "")


def event_names(span: Span) -> list[str]:
    return [event["name"] for event in span.get("events") or []]


def test_a_run_is_one_trace_from_the_command_to_its_last_stage(
    tmp_path: Path, postgres_url: str, rabbitmq: str
) -> None:
    # Given a worker and a command that trace through a real SDK into span files
    migrate.upgrade(postgres_url)
    traces = tmp_path / "traces"
    traces.mkdir()
    env = service_env(
        tmp_path,
        DATABASE_URL=postgres_url,
        BROKER_URL=rabbitmq,
        TASKPIPES_APP="tests.traced_pipelines",
        OTEL_TRACES_EXPORTER="console",
        TRACE_DIR=str(traces),
    )
    worker = [str(VENV_BIN / "dramatiq"), "tests.traced_pipelines", "-p", "1", "-t", "2"]
    with process(worker, env, tmp_path / "workers.log"):
        # When `taskpipes run` asks for a run, whose stage b defers once and c fails once
        result = taskpipes(["run", "traced", "--timeout", "90"], env)
        assert result.returncode == 0, result.stdout + result.stderr
        spans = wait_for_spans(traces, lambda found: len(run_spans(found)) >= 7)

    # Then the command's span and every stage attempt's share one trace id
    command = [s for s in spans if s["name"] == "taskpipes run traced"]
    assert len(command) == 1
    trace_id = command[0]["context"]["trace_id"]
    stage_spans = run_spans(spans)
    names = [s["name"] for s in sorted(stage_spans, key=lambda s: s["start_time"])]
    assert names == [
        "taskpipes run traced",
        "process traced_tick",  # stage a works in the tick's own message
        "process traced_b",  # deferred
        "process traced_b",
        "process traced_c",  # failed, retried
        "process traced_c",
        "process traced_d",
    ]
    assert {s["context"]["trace_id"] for s in stage_spans} == {trace_id}

    # and each attempt's parent is the attempt that sent its message: the stage before,
    # the deferred attempt, the failed one; up to the command's span, the trace's root
    by_id = {s["context"]["span_id"]: s for s in spans}
    (tick,) = processed(spans, "traced_tick")
    b_deferred, b_again = processed(spans, "traced_b")
    c_failed, c_retried = processed(spans, "traced_c")
    (d,) = processed(spans, "traced_d")
    chain = [command[0], tick, b_deferred, b_again, c_failed, c_retried, d]
    assert [parent_of(s, by_id) for s in chain] == [None, *chain[:-1]]

    # with the run's attributes, and retries and deferrals as events
    run_id = attrs(tick)["taskpipes.run_id"]
    for span in (b_deferred, b_again, c_failed, c_retried, d):
        assert attrs(span)["taskpipes.run_id"] == run_id
        assert attrs(span)["taskpipes.tick"] == attrs(tick)["taskpipes.tick"]
    assert [attrs(s)["taskpipes.stage"] for s in (b_again, c_retried, d)] == ["b", "c", "d"]
    assert [attrs(s)["taskpipes.attempt"] for s in (c_failed, c_retried)] == [1, 2]
    assert "taskpipes.deferral" in event_names(b_deferred)
    assert "taskpipes.retry" in event_names(c_failed)
    assert "exception" in event_names(c_failed)
    assert c_failed["status"]["status_code"] == "ERROR"
    assert c_retried["status"]["status_code"] == "UNSET"

    # and the instrumentations' SQL and AMQP spans are children of the attempts
    sql = [s for s in spans if attrs(s).get("db.system") == "postgresql"]
    amqp = [s for s in spans if s["kind"] == "SpanKind.PRODUCER" and s.get("parent_id")]
    for stage_span in chain[1:]:
        assert any(parent_of(s, by_id) is stage_span for s in sql), stage_span["name"]
    assert any(parent_of(s, by_id) is c_failed for s in amqp)  # the retry's publish
    assert {s["context"]["trace_id"] for s in sql + amqp} == {trace_id}
    # and the run's row keeps its trace id, for its page and /api/runs (the console
    # exporter writes it as 0x + 32 hex digits)
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        kept = connection.scalar(select(Run.trace_id).where(Run.id == run_id))
    engine.dispose()
    assert f"0x{kept}" == trace_id

    # and no password is in any span
    text = "".join(path.read_text() for path in traces.glob("*.jsonl"))
    assert "guest:guest" not in text and ":guest@" not in text
