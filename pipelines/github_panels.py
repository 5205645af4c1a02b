"""The GitHub application's panels on the overview dashboard: its rate limit and its
requests (pipelines/github_metrics.py). deploy/generate.py hands them to the kit's
generator; only that script and its tests import this module (it needs the `deploy` extra,
Grafana's SDK)."""

from __future__ import annotations

from taskpipes.deploy.panels import NOTHING_YET, ZERO, Panel, graph


def overview_panels() -> list[Panel]:
    return [
        graph(
            "GitHub rate limit remaining",
            [
                (
                    "min by (resource) (taskpipes_github_ratelimit_remaining)" + NOTHING_YET,
                    "{{resource}}",
                )
            ],
            "short",
            8,
            "Search allows 30 requests/min with a token; GitHubRateLimitLow under 6.",
        ),
        graph(
            "GitHub rate limit: time until reset",
            [
                (
                    "max by (resource) (taskpipes_github_ratelimit_reset_timestamp_seconds)"
                    " - time()" + NOTHING_YET,
                    "{{resource}}",
                )
            ],
            "s",
            8,
        ),
        graph(
            "GitHub requests by endpoint and code",
            [
                (
                    "sum by (endpoint, code) (rate(taskpipes_github_requests_total[5m]))" + ZERO,
                    "{{endpoint}} {{code}}",
                )
            ],
            "reqps",
            8,
        ),
    ]
