"""The tracing middleware on Dramatiq's in-process broker, with the SDK's in-memory
exporter: what a span carries and which trace each message joins. The real run, on
RabbitMQ and PostgreSQL, is tests/e2e/test_tracing.py; the OTEL_* settings are here too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Retries
from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc
from opentelemetry.exporter.otlp.proto.http import trace_exporter as http
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskpipes import Pipeline, Registry, Stage
from taskpipes.declare.settings import ConfigError, load_settings
from taskpipes.observe import otel, tracing
from taskpipes.store.runs import RUN_OPTION

# How long a test waits for the in-process workers.
JOIN_MS = 10_000
QUEUE = "traced"
PIPELINE = Pipeline("p", stages=(Stage("a", lambda ctx: 0), Stage("b", lambda ctx: 0)))


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def run_traces() -> list[tuple[int, str]]:
    """What the middleware told of each run's trace (the kit keeps it on the run's row)."""
    return []


@pytest.fixture
def broker(
    exported: InMemorySpanExporter, run_traces: list[tuple[int, str]]
) -> Iterator[StubBroker]:
    """An in-process broker whose first middleware traces into `exported`, with workers."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    catalogue = Registry()
    catalogue.declare(PIPELINE)
    traced = otel.Tracing(
        provider.get_tracer("test"),
        catalogue,
        on_run_trace=lambda run_id, trace_id: run_traces.append((run_id, trace_id)),
    )
    broker = StubBroker(
        middleware=[traced, Retries(min_backoff=10, max_backoff=20), CurrentMessage()]
    )
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_timeout=10)
    worker.start()
    yield broker
    worker.stop()
    broker.close()


def actor(broker: StubBroker, name: str, fn: Any, **options: Any) -> dramatiq.Actor:
    return dramatiq.actor(actor_name=name, queue_name=QUEUE, broker=broker, **options)(fn)


def spans_named(exported: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    found = [s for s in exported.get_finished_spans() if s.name == name]
    return sorted(found, key=lambda s: s.start_time or 0)


def join(broker: StubBroker) -> None:
    broker.join(QUEUE, timeout=JOIN_MS)


def test_a_stage_hands_off_and_retries_within_its_run_trace(
    broker: StubBroker, exported: InMemorySpanExporter, run_traces: list[tuple[int, str]]
) -> None:
    # Given a tick that claims run 7 and hands off to stage a, whose first attempt fails
    failures: list[int] = []

    def stage_a(run_id: int) -> None:
        if not failures:
            failures.append(run_id)
            raise RuntimeError("down for postgresql://app:s3cret@db/app")

    a = actor(broker, "p_a", stage_a, max_retries=1)

    def start_tick(tick: str) -> None:
        a.send_with_options(args=(7,), **{RUN_OPTION: 7})

    tick = actor(broker, "p_tick", start_tick)

    # When the tick is sent with no span around it (as the scheduler sends it)
    tick.send_with_options(kwargs={"tick": "2026-01-01T00:00:00+00:00"})
    join(broker)

    # Then the tick's publish starts the trace, a's attempts follow, the retry a child of
    # the failure
    (sent,) = spans_named(exported, "send p_tick")
    (tick_span,) = spans_named(exported, "process p_tick")
    failed, retried = spans_named(exported, "process p_a")
    assert sent.parent is None and sent.links == ()
    assert tick_span.parent is not None and tick_span.parent.span_id == sent.context.span_id
    assert failed.parent is not None and failed.parent.span_id == tick_span.context.span_id
    assert retried.parent is not None and retried.parent.span_id == failed.context.span_id
    assert {s.context.trace_id for s in (sent, tick_span, failed, retried)} == {
        sent.context.trace_id
    }
    # with the run's attributes, learnt by the tick from its hand-off
    assert dict(tick_span.attributes or {}) == {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": QUEUE,
        "messaging.message.id": tick_span.attributes["messaging.message.id"],  # type: ignore[index]
        "taskpipes.actor": "p_tick",
        "taskpipes.attempt": 1,
        "taskpipes.pipeline": "p",
        "taskpipes.tick": "2026-01-01T00:00:00+00:00",
        "taskpipes.run_id": 7,
    }
    assert [(s.attributes or {}).get("taskpipes.attempt") for s in (failed, retried)] == [1, 2]
    assert (retried.attributes or {})["taskpipes.stage"] == "a"
    assert (retried.attributes or {})["taskpipes.tick"] == "2026-01-01T00:00:00+00:00"
    # and the failure is an error, with the retry an event and the password masked
    events = {e.name: dict(e.attributes or {}) for e in failed.events}
    assert events["taskpipes.retry"]["taskpipes.attempt"] == 2
    assert events["exception"]["exception.message"] == "down for postgresql://***@db/app"
    assert "s3cret" not in events["exception"]["exception.stacktrace"]
    assert not failed.status.is_ok and retried.status.is_unset
    # and the run's trace id was handed on once, by its tick, for the run's row
    assert run_traces == [(7, format(sent.context.trace_id, "032x"))]


def test_a_deferral_is_an_event_and_the_deferred_message_a_child(
    broker: StubBroker, exported: InMemorySpanExporter
) -> None:
    # Given stage b, which sends itself again later the first time (a deferral)
    deferred: list[int] = []

    def stage_b(run_id: int) -> None:
        if not deferred:
            deferred.append(run_id)
            b.send_with_options(args=(run_id,), delay=10, **{RUN_OPTION: run_id})

    b = actor(broker, "p_b", stage_b)

    # When it runs for run 3
    b.send_with_options(args=(3,), **{RUN_OPTION: 3})
    join(broker)

    # Then the first attempt records the deferral, and the deferred message is its child
    first, again = spans_named(exported, "process p_b")
    (deferral,) = [e for e in first.events if e.name == "taskpipes.deferral"]
    assert dict(deferral.attributes or {}) == {"taskpipes.delay_ms": 10, "taskpipes.stage": "b"}
    assert again.parent is not None and again.parent.span_id == first.context.span_id


def test_the_last_failed_attempt_says_it_gave_up(
    broker: StubBroker, exported: InMemorySpanExporter
) -> None:
    def stage_b(run_id: int) -> None:
        raise RuntimeError("still down")

    b = actor(broker, "p_b", stage_b, max_retries=0)
    b.send_with_options(args=(4,), **{RUN_OPTION: 4})
    with pytest.raises(RuntimeError, match="still down"):  # the stub broker's join re-raises
        join(broker)

    (span,) = spans_named(exported, "process p_b")
    assert [e.name for e in span.events] == ["exception", "taskpipes.gave_up"]


def test_a_message_from_before_the_upgrade_starts_a_trace_of_its_own(
    broker: StubBroker, exported: InMemorySpanExporter
) -> None:
    # Given a stage message enqueued with no trace context (an old one, or a replay's)
    b = actor(broker, "p_b", lambda run_id: None)
    message = b.message_with_options(args=(5,), **{RUN_OPTION: 5})
    assert "traceparent" not in message.options

    # When it is processed
    broker.enqueue(message)
    join(broker)

    # Then its span is a root, still naming its run
    (span,) = spans_named(exported, "process p_b")
    assert span.parent is None
    assert (span.attributes or {})["taskpipes.run_id"] == 5


def test_a_backfill_gives_each_run_a_trace_linked_to_it(
    broker: StubBroker, exported: InMemorySpanExporter
) -> None:
    # Given the tick actor
    tick = actor(broker, "p_tick", lambda tick, explicit=False: None)

    # When a backfill asks for two ticks
    with tracing.asking(broker, "backfill", "p", batch=True):
        for at in ("2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00"):
            tick.send_with_options(kwargs={"tick": at, "explicit": True})
    join(broker)

    # Then each run is a trace of its own, whose root links to the backfill's span
    (backfill,) = spans_named(exported, "taskpipes backfill p")
    ticks = spans_named(exported, "process p_tick")
    sends = {s.context.span_id: s for s in spans_named(exported, "send p_tick")}
    assert len({s.context.trace_id for s in ticks}) == 2
    assert backfill.context.trace_id not in {s.context.trace_id for s in ticks}
    for span in ticks:
        assert span.parent is not None
        root = sends[span.parent.span_id]
        assert root.parent is None
        assert [link.context.span_id for link in root.links] == [backfill.context.span_id]


def test_a_command_s_run_is_in_the_command_s_trace(
    broker: StubBroker, exported: InMemorySpanExporter
) -> None:
    tick = actor(broker, "p_tick", lambda tick, explicit=False: None)

    with tracing.asking(broker, "run", "p"):
        tick.send_with_options(kwargs={"tick": "2026-01-01T00:00:00+00:00", "explicit": True})
    join(broker)

    (command,) = spans_named(exported, "taskpipes run p")
    (span,) = spans_named(exported, "process p_tick")
    assert span.parent is not None and span.parent.span_id == command.context.span_id


def test_without_tracing_a_command_asks_without_a_span() -> None:
    broker = StubBroker()
    with tracing.asking(broker, "run", "p"):
        pass  # nothing to trace into, and nothing fails
    assert tracing.tracing_middleware(load_settings({})) is None


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, ()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ("otlp_proto_http",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ("otlp_proto_http",)),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            ("otlp_proto_grpc",),
        ),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, ("console", "otlp_proto_http")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, ()),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, ()),
    ],
)
def test_the_otel_variables_turn_tracing_on(
    env: dict[str, str], exporters: tuple[str, ...]
) -> None:
    settings = load_settings(env)
    assert settings.trace_exporters == exporters
    assert settings.tracing == bool(exporters)


def test_an_unknown_otlp_protocol_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL must be one of"):
        load_settings({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"})


@pytest.mark.parametrize(
    ("name", "exporter"),
    [
        ("console", ConsoleSpanExporter),
        ("otlp_proto_http", http.OTLPSpanExporter),
        ("otlp_proto_grpc", grpc.OTLPSpanExporter),
    ],
)
def test_each_exporter_name_finds_its_sdk_exporter(name: str, exporter: type) -> None:
    assert otel.exporter_class(name) is exporter


def test_the_service_is_taskpipes_unless_the_variables_name_one() -> None:
    provider = otel.sdk_provider(())
    assert provider.resource.attributes["service.name"] == "taskpipes"  # type: ignore[attr-defined]


def test_an_exporter_no_package_provides_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER names 'otlp_typo'"):
        otel.exporter_class("otlp_typo")
