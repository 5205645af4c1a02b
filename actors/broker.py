"""The broker: the project's only global. Built once from settings, middleware added here."""

from __future__ import annotations

import dramatiq
import pendulum
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, default_middleware

from actors.middleware import CrashGuard, MetricsFiles, SchedulerProbe, TickAge
from taskpipes import rabbit
from taskpipes.settings import Settings, get_settings


def build_broker(settings: Settings) -> dramatiq.Broker:
    middleware = [m() for m in default_middleware]
    middleware += [CurrentMessage(), TickAge(), CrashGuard(settings.max_crashes), SchedulerProbe()]
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


# periodiq computes ticks with pendulum's local zone: pin it to UTC so DST never skips or
# doubles a tick, whatever the host's timezone.
pendulum.set_local_timezone(pendulum.UTC)

broker = build_broker(get_settings())
dramatiq.set_broker(broker)
