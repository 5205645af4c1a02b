"""A traced 4-stage pipeline, for tests/e2e/test_tracing.py.

Loaded as the application (TASKPIPES_APP=tests.traced_pipelines) by both the worker
(`dramatiq tests.traced_pipelines -p 1`) and `taskpipes run traced`. Before the kit builds
its broker, each process installs a real OpenTelemetry SDK provider whose exporter writes
every finished span as one JSON line into TRACE_DIR/spans-<pid>.jsonl, synchronously, so
the test reads what each process exported. The kit keeps a provider the application set;
OTEL_TRACES_EXPORTER still decides whether it traces at all.

Stage `b` defers once per run (a deferral), stage `c` fails its first attempt (a retry).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from dramatiq.middleware import CurrentMessage
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class JsonLinesExporter(SpanExporter):
    """Each span as one line of JSON, in a file of the exporting process's own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with (self.directory / f"spans-{os.getpid()}.jsonl").open("a") as out:
            for span in spans:
                out.write(json.dumps(json.loads(span.to_json(indent=None))) + "\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(Path(os.environ["TRACE_DIR"]))))
trace.set_tracer_provider(provider)

# isort: split
import actors  # noqa: E402,F401  (the broker and the kit's actors come first)
from taskpipes import Context, Later, Pipeline, Retries, Stage, registry  # noqa: E402

application = actors.application
# Runs whose stage b has deferred once (the worker is one process).
DEFERRED: set[int] = set()


class NotYet(Exception):
    """Stage b's data is not there yet: try again shortly."""


def nothing(ctx: Context) -> int:
    return 0


def defer_once(ctx: Context) -> int:
    if ctx.run_id not in DEFERRED:
        DEFERRED.add(ctx.run_id)
        raise NotYet()
    return 0


def fail_first_attempt(ctx: Context) -> int:
    message = CurrentMessage.get_current_message()
    if message is not None and not message.options.get("retries"):
        raise RuntimeError("the first attempt fails")
    return 0


def shortly(ctx: Context, exc: Exception) -> Later:
    return Later(0.2)


TRACED = Pipeline(
    "traced",
    stages=(
        Stage("a", nothing),
        Stage("b", defer_once, defer_on=(NotYet,), later=shortly),
        Stage("c", fail_first_attempt),
        Stage("d", nothing),
    ),
    queue="default",
    retries=Retries(max=2, min_backoff_ms=100, max_backoff_ms=200, time_limit_ms=60_000),
)
registry.declare(TRACED)
