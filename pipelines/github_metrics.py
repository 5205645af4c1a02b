"""The GitHub application's Prometheus metrics: its requests, its rate limit and the lag of
GitHub's search index. Declared with `taskpipes.metrics` like the kit's own, so they are
made on first use and land in the multiprocess directory under `dramatiq actors`.

The names keep their `taskpipes_github_` prefix: deploy/ dashboards and alerts read them.
"""

from __future__ import annotations

from taskpipes import metrics

REQUESTS = metrics.counter("taskpipes_github_requests", "GitHub API requests", ["endpoint", "code"])
RATELIMIT_REMAINING = metrics.gauge(
    "taskpipes_github_ratelimit_remaining", "GitHub rate limit remaining", ["resource"]
)
RATELIMIT_RESET = metrics.gauge(
    "taskpipes_github_ratelimit_reset_timestamp_seconds",
    "When the GitHub rate limit resets",
    ["resource"],
)
RANK_INVERSIONS = metrics.gauge(
    "taskpipes_github_rank_inversions",
    "Pairs the last stored sort=stars answer listed out of order of its own counts",
)


def github_request(endpoint: str, code: int | str) -> None:
    REQUESTS().labels(endpoint, str(code)).inc()


def github_ratelimit(resource: str, remaining: int, reset_ts: float) -> None:
    RATELIMIT_REMAINING().labels(resource).set(remaining)
    RATELIMIT_RESET().labels(resource).set(reset_ts)


def github_rank_inversions(count: int) -> None:
    """GitHub's search index lags the live counts it reports; a rise shows it lagging more."""
    RANK_INVERSIONS().set(count)
