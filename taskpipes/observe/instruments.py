"""Declaring Prometheus metrics, for the kit's own and for an application's
(`taskpipes.metrics.counter`, `gauge`, `histogram`).

A declaration is a name and a recipe; the metric is made on first use. That is what makes
it multiprocess-safe: prometheus_client picks its value class (in memory, or files in
PROMETHEUS_MULTIPROC_DIR) when a metric is made, and under `dramatiq actors` the worker
children only know the directory after they boot. Made, it sits in prometheus_client's
default registry, so `/metrics` (taskpipes.observe.metrics.metrics_text) and dramatiq's
exporter show it next to the kit's:

    FEED_ITEMS = taskpipes.metrics.counter("myapp_feed_items", "Items read", ["feed"])
    FEED_ITEMS().labels("news").inc()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from taskpipes.declare.configuration import configuration

M = TypeVar("M", Counter, Gauge, Histogram)
# prometheus_client's own buckets, from 5 ms to 10 s.
DEFAULT_BUCKETS = Histogram.DEFAULT_BUCKETS

# Every name declared in this process: a second declaration fails at import, not at the
# first use of the metric (which would be inside a stage).
_declared: set[str] = set()


class LazyMetric(Generic[M]):
    """A declared metric: call it for the prometheus_client metric, made on the first call."""

    def __init__(self, name: str, make: Callable[[], M]) -> None:
        if name in _declared:
            raise ValueError(f"metric {name!r} is declared twice")
        _declared.add(name)
        self.name = name
        self._make: Callable[[], M] = make

    def __call__(self) -> M:
        """The metric, made on first use and kept in the process's configuration until it
        changes (then withdrawn from the registry: the value class may change with it). The
        configuration makes it under its lock: worker threads meet a metric's first use at
        once, and a second registration would raise (a duplicated timeseries) in the middle
        of a stage whose work already committed."""
        return configuration.derived(("metric", self.name), self._make, REGISTRY.unregister)

    def __repr__(self) -> str:
        return f"LazyMetric({self.name!r})"


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> LazyMetric[Counter]:
    """A counter; Prometheus shows it as `name_total`."""
    return LazyMetric(name, lambda: Counter(name, documentation, labels))


def gauge(
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    multiprocess_mode: str = "mostrecent",
) -> LazyMetric[Gauge]:
    """A gauge. With several processes, `mostrecent` (the default here) shows the value
    last set by any of them; prometheus_client's own default ("all") would show one series
    per process id, which a dashboard cannot sum. "max", "min", "sum" are the others."""
    return LazyMetric(
        name,
        lambda: Gauge(name, documentation, labels, multiprocess_mode=multiprocess_mode),  # type: ignore[arg-type]
    )


def histogram(
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    buckets: Sequence[float] = DEFAULT_BUCKETS,
) -> LazyMetric[Histogram]:
    """A histogram, summed over processes."""
    return LazyMetric(name, lambda: Histogram(name, documentation, labels, buckets=buckets))
