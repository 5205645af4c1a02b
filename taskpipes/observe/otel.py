"""OpenTelemetry for taskpipes: a Dramatiq middleware that makes each run one trace.

Imported only through taskpipes.observe.tracing, once tracing is configured: this module
imports the optional `otel` extra at its top.

```
taskpipes run P  (span, CLI)  |  send P_tick (the scheduler)  |  no context (an old message)
  └─ process P_tick   (worker: one span per attempt)
       └─ process P_a
            └─ process P_b  attempt 1  -- a retry event
                 └─ process P_b  attempt 2
                      └─ process P_c ...
```
The context rides in each message's options (W3C `traceparent`, and `tracestate` when
there is one), written as the message is enqueued inside a span: a hand-off's message is
a child of the stage that sent it, a retry's of the attempt that failed. A message with
no context (sent before the upgrade) starts a trace of its own. A tick message starts its run's trace with a `send` span as it is published (by the
scheduler, say), unless `taskpipes run` asked for it: then the command's span is the
root. A tick sent by a batch (a backfill, the catch-up pass) is linked to the batch's span,
so that a run stays one trace and a batch is not one huge one.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy.exc import SQLAlchemyError

from taskpipes.declare.registry import Registry, registry
from taskpipes.declare.settings import ConfigError
from taskpipes.store import runs
from taskpipes.store.database import begin
from taskpipes.store.runs import RUN_OPTION

logger = logging.getLogger(__name__)

# The namespace of the kit's span attributes and events, as OpenTelemetry's naming rules
# ask; docs/how-to/tracing.md lists every name.
NS = "taskpipes"
PIPELINE, STAGE, RUN_ID, TICK, ATTEMPT = (
    NS + ".pipeline",
    NS + ".stage",
    NS + ".run_id",
    NS + ".tick",
    NS + ".attempt",
)
ACTOR, COMMAND, DELAY_MS = NS + ".actor", NS + ".command", NS + ".delay_ms"
RETRY, DEFERRAL, GAVE_UP, SKIPPED = (
    NS + ".retry",
    NS + ".deferral",
    NS + ".gave_up",
    NS + ".skipped",
)
# The run's tick, carried by its stage messages for their spans (a stage message's
# arguments hold only the run id).
TICK_OPTION = "taskpipes_tick"
# The stage name actor_names gives a pipeline's tick actor (no stage is named so: its
# actor would clash with the tick's).
TICK_STAGE = "tick"
# The scope name of the kit's spans.
TRACER_NAME = "taskpipes"
# The W3C trace context: our own message format, so not the process's global propagator
# (which may add baggage, sent on to every HTTP call the stages make).
PROPAGATOR: TextMapPropagator = TraceContextTextMapPropagator()
# Set in the context of a command's span whose tick messages each start a trace.
BATCH_KEY = otel_context.create_key(NS + ".batch")
# A URL's user and password (a DATABASE_URL or BROKER_URL in an error message).
URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")


@dataclass
class Processing:
    """The message this worker thread is processing, and its span."""

    message_id: str
    span: Span
    token: object
    tick: str | None
    run_id: int | None


class Tracing(Middleware):
    """One span per processing of a message; the trace context in each message's options."""

    def __init__(
        self,
        tracer: Tracer,
        catalogue: Registry = registry,
        on_run_trace: Callable[[int, str], None] | None = None,
    ) -> None:
        self.tracer = tracer
        # Told each run's trace id by its tick (default: keep it on the run's row).
        self.on_run_trace = on_run_trace or keep_trace
        # The declarations that name each actor's pipeline and stage.
        self.catalogue = catalogue
        self.local = threading.local()

    # -- the sending side ------------------------------------------------------------
    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None
    ) -> None:
        self._end_sending()  # a publish that failed left its context attached
        current: Processing | None = getattr(self.local, "processing", None)
        retry = current is not None and current.message_id == message.message_id
        if current is not None:
            self._note_send(current, message, delay, retry)
        if self._starts_run_trace(message, current, retry):
            self._start_run_trace(message)
        elif current is not None or not has_context(message):
            if trace.get_current_span().get_span_context().is_valid:
                PROPAGATOR.inject(message.options)
        else:
            # Outside any message (the consumer thread moving a delayed message or a retry
            # to its queue, a dead-letter replay): the message keeps its own context, and
            # its publish span belongs to its trace, not to whatever pika's instrumentation
            # left current in this thread (the last message it received).
            parent = PROPAGATOR.extract(message.options, context=otel_context.Context())
            self.local.sending = (otel_context.attach(parent), None)

    def after_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None
    ) -> None:
        self._end_sending()

    def _end_sending(self) -> None:
        """Detach (and end) what before_enqueue set for the publish."""
        sending: tuple[object, Span | None] | None = getattr(self.local, "sending", None)
        if sending is not None:
            self.local.sending = None
            token, span = sending
            otel_context.detach(token)  # type: ignore[arg-type]
            if span is not None:
                span.end()

    def _starts_run_trace(
        self, message: dramatiq.Message, current: Processing | None, retry: bool
    ) -> bool:
        """A tick message starts its run's trace, unless it is a retry (or a delayed tick
        moved to its queue) that carries its context, or a command asked for that one run
        (`taskpipes run`: the run is in the command's trace)."""
        if self._named(message)[1] != TICK_STAGE or retry:
            return False
        if current is not None or batch_asked():
            return True
        asked = trace.get_current_span().get_span_context().is_valid
        return not asked and not has_context(message)

    def _start_run_trace(self, message: dramatiq.Message) -> None:
        """The root span of a run's trace, open while its tick message is published: the
        scheduler's tick, or one of a batch's ticks (linked to the batch's span)."""
        asker = trace.get_current_span().get_span_context()
        links = [Link(asker)] if asker.is_valid else []
        span = self.tracer.start_span(
            f"send {message.actor_name}",
            context=otel_context.Context(),
            kind=SpanKind.PRODUCER,
            links=links,
            attributes=self._attributes(message),
        )
        sending = trace.set_span_in_context(span, otel_context.Context())
        PROPAGATOR.inject(message.options, context=sending)
        self.local.sending = (otel_context.attach(sending), span)

    def _note_send(
        self, current: Processing, message: dramatiq.Message, delay: int | None, retry: bool
    ) -> None:
        """A retry or a deferral is an event on the attempt that sends it; a hand-off names
        the run a tick message claimed, and carries the run's tick on."""
        run_id = message.options.get(RUN_OPTION)
        if retry:
            current.span.add_event(
                RETRY,
                {DELAY_MS: delay or 0, ATTEMPT: attempt_of(message)},
            )
        elif delay and run_id is not None and current.run_id is not None:
            stage = self._named(message)[1] or message.actor_name
            current.span.add_event(DEFERRAL, {DELAY_MS: delay, STAGE: stage})
        if isinstance(run_id, int) and current.run_id is None:
            current.run_id = run_id
            current.span.set_attribute(RUN_ID, current.run_id)
        if run_id is not None and current.tick is not None:
            message.options.setdefault(TICK_OPTION, current.tick)

    # -- the processing side ---------------------------------------------------------
    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        parent = PROPAGATOR.extract(message.options, context=otel_context.Context())
        attributes = self._attributes(message)
        span = self.tracer.start_span(
            f"process {message.actor_name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        tick = attributes.get(TICK)
        run_id = attributes.get(RUN_ID)
        self.local.processing = Processing(
            message.message_id,
            span,
            token,
            None if tick is None else str(tick),
            run_id,
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        processing: Processing | None = getattr(self.local, "processing", None)
        if processing is not None and processing.run_id is not None:
            if message.actor_name.endswith("_tick"):
                # Still inside the tick's span: the statement is one of its children.
                trace_id = format(processing.span.get_span_context().trace_id, "032x")
                self.on_run_trace(processing.run_id, trace_id)
        current = self._finish()
        if current is None:
            return
        if exception is not None:
            record_failure(current.span, exception)
            if message.failed:
                current.span.add_event(GAVE_UP)
        current.span.end()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        current = self._finish()
        if current is not None:
            current.span.add_event(SKIPPED)
            current.span.end()

    def _finish(self) -> Processing | None:
        self._end_sending()
        current: Processing | None = getattr(self.local, "processing", None)
        if current is not None:
            self.local.processing = None
            otel_context.detach(current.token)  # type: ignore[arg-type]
        return current

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Dramatiq's worker processes may end without running atexit: send what is batched.
        provider = trace.get_tracer_provider()
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()

    def _named(self, message: dramatiq.Message | MessageProxy) -> tuple[str | None, str | None]:
        """The message's (pipeline, stage), (None, None) for an actor no pipeline declares."""
        return actor_names(self.catalogue).get(message.actor_name, (None, None))

    def _attributes(self, message: dramatiq.Message | MessageProxy) -> dict[str, Any]:
        """What a message's span carries: its pipeline, stage, run, tick and attempt. Never
        a URL, a header or an argument beyond the run id."""
        attributes: dict[str, Any] = {
            "messaging.system": "rabbitmq",
            "messaging.destination.name": message.queue_name,
            "messaging.message.id": message.message_id,
            ACTOR: message.actor_name,
            ATTEMPT: attempt_of(message),
        }
        pipeline, stage = self._named(message)
        if pipeline is not None:
            attributes[PIPELINE] = pipeline
        if stage is not None and stage != TICK_STAGE:
            attributes[STAGE] = stage
        run_id = message.options.get(RUN_OPTION)
        if isinstance(run_id, int):  # a hook that raised would fail the message: no int()
            attributes[RUN_ID] = run_id
        tick = tick_of(message)
        if tick is not None:
            attributes[TICK] = tick
        return attributes

    # -- commands that ask for runs ---------------------------------------------------
    @contextmanager
    def asking(self, command: str, pipeline: str, *, batch: bool = False) -> Iterator[None]:
        attributes = {PIPELINE: pipeline, COMMAND: command}
        with self.tracer.start_as_current_span(
            f"taskpipes {command} {pipeline}", attributes=attributes
        ):
            token = otel_context.attach(otel_context.set_value(BATCH_KEY, True)) if batch else None
            try:
                yield
            finally:
                if token is not None:
                    otel_context.detach(token)


def keep_trace(run_id: int, trace_id: str) -> None:
    """Record the run's trace id on its row, for its pages (one statement per tick, and
    only with tracing on). Never fails the message: the trace is a view of the run."""
    try:
        with begin() as session:
            runs.note_trace(session, run_id, trace_id)
    except SQLAlchemyError as exc:
        logger.warning("run %s: its trace id was not recorded: %s", run_id, type(exc).__name__)


def has_context(message: dramatiq.Message) -> bool:
    return "traceparent" in message.options


def batch_asked() -> bool:
    return bool(otel_context.get_value(BATCH_KEY))


def attempt_of(message: dramatiq.Message | MessageProxy) -> int:
    """1 for a message's first processing, 2 for its first retry, ..."""
    return int(message.options.get("retries", 0)) + 1


def tick_of(message: dramatiq.Message | MessageProxy) -> str | None:
    """A tick message's own (explicit) or periodiq's; a stage message's from its run."""
    tick = message.kwargs.get("tick") if isinstance(message.kwargs, dict) else None
    tick = tick or message.options.get("scheduled_at") or message.options.get(TICK_OPTION)
    return None if tick is None else str(tick)


def actor_names(catalogue: Registry) -> dict[str, tuple[str, str]]:
    """Each declared actor's (pipeline, stage); TICK_STAGE for a pipeline's tick actor."""
    names = {}
    for pipeline in catalogue.declared:
        names[pipeline.actor_name("tick")] = (pipeline.name, TICK_STAGE)
        for stage in pipeline.stages:
            names[pipeline.entry_actor(stage)] = (pipeline.name, stage.name)
    return names


def record_failure(span: Span, exception: BaseException) -> None:
    """The exception as an event, with any URL credentials in its text masked."""
    span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
    span.add_event(
        "exception",
        {
            "exception.type": type(exception).__qualname__,
            "exception.message": scrubbed(str(exception)),
            "exception.stacktrace": scrubbed("".join(traceback.format_exception(exception))),
        },
    )


def scrubbed(text: str) -> str:
    return URL_CREDENTIALS.sub(r"\1***@", text)


# -- set-up ------------------------------------------------------------------------------
def set_up(exporters: tuple[str, ...]) -> Tracing:
    """The SDK's provider (unless the application or `opentelemetry-instrument` installed
    one), the instrumentations of SQLAlchemy, requests and pika, and the middleware."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(sdk_provider(exporters))
    instrument()
    return Tracing(trace.get_tracer(TRACER_NAME))


def sdk_provider(exporters: tuple[str, ...]) -> trace.TracerProvider:
    """The SDK's provider: the resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    (service `taskpipes` when they name none), spans batched to each exporter."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "taskpipes"}))
    provider = TracerProvider(resource=resource)
    for name in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter_class(name)()))
    return provider


def exporter_class(name: str) -> type:
    """The span exporter an installed package provides under `name`, as the SDK's own
    auto-configuration finds it (entry points `opentelemetry_traces_exporter`)."""
    from importlib.metadata import entry_points

    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides"
        )
    return next(iter(found)).load()  # type: ignore[no-any-return]


def instrument() -> None:
    """Child spans for SQL statements, HTTP calls and AMQP publishes. Each instrumentor
    instruments once per process, however often this runs. None of them records a
    password: SQLAlchemy's records the host, port, database and user of the URL, pika's
    the host and port, requests' the URL without its credentials, and no header."""
    from opentelemetry.instrumentation.pika import PikaInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # Its metadata says SQLAlchemy < 2.1, but it uses only the event API that 2.1 keeps;
    # tests/e2e/test_tracing.py checks its spans on the SQLAlchemy the kit installs.
    SQLAlchemyInstrumentor().instrument(enable_commenter=False, skip_dep_check=True)
    RequestsInstrumentor().instrument()
    PikaInstrumentor().instrument()
