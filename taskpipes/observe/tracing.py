"""One trace per run, when the OTEL_* variables ask for it (docs/how-to/tracing.md).

This module is what the rest of the kit calls; it never imports OpenTelemetry itself.
OpenTelemetry is the optional extra `taskpipes[otel]`, so its import is deferred to
`taskpipes.observe.otel`, loaded only once the settings turn tracing on: a kit installed
without the extra, or run without OTEL_* configuration, pays nothing for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
from dramatiq.middleware import Middleware

from taskpipes.declare.settings import Settings

logger = logging.getLogger("taskpipes")


def tracing_middleware(settings: Settings) -> Middleware | None:
    """The middleware that traces runs, with the SDK and the instrumentations set up; None
    when tracing is off, or asked for without the `otel` extra installed (said once)."""
    if not settings.tracing:
        return None
    try:
        # Deferred: the optional dependency is imported only when tracing is configured.
        from taskpipes.observe import otel
    except ImportError:
        logger.warning(
            "OTEL_* variables ask for traces but OpenTelemetry is not installed: "
            "install taskpipes[otel]; tracing is off"
        )
        return None
    return otel.set_up(settings.trace_exporters)


@contextmanager
def asking(
    broker: dramatiq.Broker, command: str, pipeline: str, *, batch: bool = False
) -> Iterator[None]:
    """A span for a command that asks for runs (`taskpipes run`, `backfill`), the messages
    it sends inside it carrying its context. With `batch`, each run it asks for gets a
    trace of its own, linked to this span. Nothing when the broker traces nothing."""
    tracing = next((m for m in broker.middleware if hasattr(m, "asking")), None)
    if tracing is None:
        yield
        return
    with tracing.asking(command, pipeline, batch=batch):
        yield
