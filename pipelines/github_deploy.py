"""What the GitHub application adds to the kit's generated deploy files for its own metrics
(pipelines/github_metrics.py): its overview panels (rate limit, requests) and its alert,
GitHubRateLimitLow, with its promtool cases (github_alerts.yml, github_alert_tests.yml
beside this module). deploy/generate.py hands them to the kit's generator; only that
script and its tests import this module (it needs the `deploy` extra, Grafana's SDK)."""

from __future__ import annotations

from pathlib import Path

from taskpipes.deploy import Extras
from taskpipes.deploy.panels import NOTHING_YET, ZERO, Panel, graph

HERE = Path(__file__).resolve().parent


def extras() -> Extras:
    return Extras(
        panels=overview_panels(),
        rules=(HERE / "github_alerts.yml").read_text(),
        rule_tests=(HERE / "github_alert_tests.yml").read_text(),
    )


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
