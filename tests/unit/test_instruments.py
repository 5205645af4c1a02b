"""Metrics an application declares (taskpipes.metrics): made on first use, once, however
many threads meet it at once, and served with the kit's."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import REGISTRY, Counter

from taskpipes import metrics
from taskpipes.observe.metrics import metrics_text

FEED_ITEMS = metrics.counter("test_instruments_feed_items", "Items read", ["feed"])
BACKLOG = metrics.gauge("test_instruments_backlog", "Items waiting")
FETCH_SECONDS = metrics.histogram("test_instruments_fetch_seconds", "Fetch time", buckets=(1, 5))


def test_a_metric_is_made_on_first_use_and_served() -> None:
    # Given a declared counter nobody has used
    assert REGISTRY.get_sample_value("test_instruments_feed_items_total", {"feed": "news"}) is None

    # When it is used
    FEED_ITEMS().labels("news").inc(3)
    BACKLOG().set(7)
    FETCH_SECONDS().observe(2.0)

    # Then it is one metric, in the default registry, on /metrics
    assert FEED_ITEMS() is FEED_ITEMS()
    assert REGISTRY.get_sample_value("test_instruments_feed_items_total", {"feed": "news"}) == 3
    assert REGISTRY.get_sample_value("test_instruments_backlog") == 7
    assert REGISTRY.get_sample_value("test_instruments_fetch_seconds_bucket", {"le": "5.0"}) == 1
    assert b'test_instruments_feed_items_total{feed="news"} 3.0' in metrics_text()


def test_threads_meeting_the_first_use_make_one_metric() -> None:
    # Given a metric whose making is slow enough for 16 threads to meet inside it
    made: list[Counter] = []
    started = threading.Barrier(16)

    def slow_counter() -> Counter:
        # The wait widens the window in which a missing lock would let a second thread in:
        # the test can only fail for it, not pass.
        time.sleep(0.05)
        made.append(Counter("test_instruments_raced", "Raced"))
        return made[-1]

    raced = metrics.LazyMetric("test_instruments_raced", slow_counter)
    seen: list[Counter] = []

    def use() -> None:
        started.wait()
        seen.append(raced())

    threads = [threading.Thread(target=use) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    # Then it was made once (a second registration would have raised in a thread)
    assert len(made) == 1 and len(seen) == 16 and {id(m) for m in seen} == {id(made[0])}


def test_a_name_declared_twice_is_refused_at_declaration() -> None:
    with pytest.raises(ValueError, match="'test_instruments_feed_items' is declared twice"):
        metrics.counter("test_instruments_feed_items", "Again")
