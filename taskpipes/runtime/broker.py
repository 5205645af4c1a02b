"""The broker, built from settings with the kit's middleware. Nothing is built at import:
the application's `actors` module calls `start()`, which is what makes `dramatiq actors`
and `periodiq actors` find the broker and every actor."""

from __future__ import annotations

import dramatiq
import pendulum
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, default_middleware
from sqlalchemy import Engine

from taskpipes.declare.app_settings import check_all
from taskpipes.declare.application import Application
from taskpipes.declare.registry import registry
from taskpipes.declare.settings import Settings, get_settings, use_settings
from taskpipes.observe.tracing import tracing_middleware
from taskpipes.rabbitmq import queues as rabbit
from taskpipes.runtime import catchup, housekeeping
from taskpipes.runtime import wiring as actors
from taskpipes.runtime.middleware import CrashGuard, MetricsFiles, PoolSize, SchedulerProbe, TickAge
from taskpipes.store.database import use_engine


def build_broker(settings: Settings) -> dramatiq.Broker:
    middleware = [m() for m in default_middleware]
    middleware += [CurrentMessage(), TickAge(), CrashGuard(settings.max_crashes), SchedulerProbe()]
    middleware.append(PoolSize())
    tracing = tracing_middleware(settings)
    if tracing is not None:
        # First: its span encloses every other middleware's work on a message, and its
        # after-hooks run last, after Retries has sent the retry it records.
        middleware.insert(0, tracing)
    if settings.in_process:
        return StubBroker(middleware=middleware)
    from dramatiq.middleware.prometheus import Prometheus

    return rabbit.TypedQueuesBroker(
        queue_type=settings.queue_type,
        max_crashes=settings.max_crashes,
        url=rabbit.broker_urls(settings.broker_url or ""),
        confirm_delivery=True,
        middleware=[*middleware, MetricsFiles(), Prometheus()],
    )


def configure(settings: Settings | None = None, engine: Engine | None = None) -> None:
    """For a host application: use its settings and its engine, not the environment's and
    not an engine of ours. Call before anything runs; None leaves that part as it is.
    Both are kept in the process's one configuration (`taskpipes.declare.configuration`):
    what was built from the previous one (an engine of ours, the metrics) is built again."""
    if settings is not None:
        use_settings(settings)
    if engine is not None:
        use_engine(engine)


def start(
    settings: Settings | None = None, application: Application | None = None
) -> dramatiq.Broker:
    """Build the broker (from `settings`, else the environment's), make it Dramatiq's
    global one and register every declared pipeline's actors on it. The application's own
    settings are checked first: a worker with a bad one stops at boot, naming it."""
    configure(settings)
    check_all(application.settings if application else ())
    # periodiq computes ticks with pendulum's local zone: pin it to UTC so DST never skips
    # or doubles a tick, whatever the host's timezone.
    pendulum.set_local_timezone(pendulum.UTC)
    broker = build_broker(get_settings())
    dramatiq.set_broker(broker)
    for pipeline in registry.pipelines:
        actors.pipeline_actors(broker, pipeline)
    catchup.register(broker)
    housekeeping.register(broker)
    registry.when_declared(actors.declared_actors)
    return broker
