"""Build the taskpipes Grafana dashboards: `python deploy/grafana/build_dashboards.py`.

The committed JSON in dashboards/ is what Grafana provisions; this script is its source,
and tests/test_deploy.py checks that the two agree. Every query returns data even before
a counter has moved: rates and counts fall back to 0 (`or on() vector(0)`), quantiles and
gauges to NaN (no value yet, drawn as a gap), freshness to +Inf per pipeline (never
succeeded = stale). `on()` matters: a plain `or vector(0)` would add a label-less 0 next to
grouped series.
"""

from __future__ import annotations

import json
from pathlib import Path

# The fixed uid of the provisioned Prometheus datasource.
DATASOURCE = {"type": "prometheus", "uid": "taskpipes-prometheus"}
DASHBOARD_DIR = Path(__file__).parent / "dashboards"
ZERO = " or on() vector(0)"
NOTHING_YET = " or on() vector(NaN)"
QUANTILES = (0.5, 0.95, 0.99)
# Schedule periods in seconds; freshness turns orange after one, red after two (the alert).
PERIODS = {"github_top": 600, "rollup": 900, "maintenance": 86400}


def braces(*matchers: str) -> str:
    """A selector from label matchers, skipping empty ones: `{a="1", b="2"}` or ``."""
    present = [m for m in matchers if m]
    return "{" + ", ".join(present) + "}" if present else ""


def thresholds(*steps: tuple[float, str]) -> dict:
    return {
        "mode": "absolute",
        "steps": [{"color": "green", "value": None}]
        + [{"color": color, "value": value} for value, color in steps],
    }


def target(expr: str, legend: str, ref_id: str) -> dict:
    return {
        "refId": ref_id,
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "range": True,
    }


def panel(kind: str, title: str, queries: list[tuple[str, str]], unit: str, **extra) -> dict:
    """A panel without id and position: `layout` assigns them."""
    defaults: dict = {"unit": unit}
    if "thresholds" in extra:
        defaults["thresholds"] = extra.pop("thresholds")
        defaults["color"] = {"mode": "thresholds"}
    return {
        "type": kind,
        "title": title,
        "description": extra.pop("description", ""),
        "datasource": DATASOURCE,
        "targets": [target(q, legend, chr(ord("A") + i)) for i, (q, legend) in enumerate(queries)],
        "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])},
        "options": extra.pop("options", {}),
        "_width": extra.pop("width", 12),
    }


def quantiles(
    histogram: str, selector: str, by: str, window: str, legend: str
) -> list[tuple[str, str]]:
    group = f"{by}, le" if by else "le"
    buckets = f"sum by ({group}) (rate({histogram}_bucket{selector}[{window}]))"
    return [
        (
            f"histogram_quantile({q}, {buckets})" + NOTHING_YET,
            f"{legend} p{round(q * 100)}",
        )
        for q in QUANTILES
    ]


def never_succeeded(pipelines: list[str]) -> str:
    """+Inf labelled with each pipeline: one without a success yet still shows, as stale.

    `or` keeps a pipeline's real value and adds the +Inf only where its series is missing;
    a single label-less fallback would vanish as soon as any other pipeline succeeded.
    """
    return "".join(
        f' or label_replace(vector(Inf), "pipeline", "{name}", "", "")' for name in pipelines
    )


def freshness(selector: str, pipelines: list[str], width: int) -> dict:
    overrides = [
        {
            "matcher": {"id": "byName", "options": pipeline},
            "properties": [
                {"id": "thresholds", "value": thresholds((period, "orange"), (2 * period, "red"))}
            ],
        }
        for pipeline, period in PERIODS.items()
    ]
    return panel(
        "stat",
        "Freshness: time since last success",
        [
            (
                "time() - max by (pipeline) "
                f"(taskpipes_pipeline_last_success_timestamp_seconds{selector})"
                + never_succeeded(pipelines),
                "{{pipeline}}",
            )
        ],
        "s",
        description="Orange after one schedule period, red after two (PipelineStale). "
        "Infinity: no success since the workers started.",
        thresholds=thresholds((600, "orange"), (1200, "red")),
        overrides=overrides,
        options={"colorMode": "background", "graphMode": "none", "textMode": "value_and_name"},
        width=width,
    )


def runs_by_status(selector: str) -> dict:
    return panel(
        "timeseries",
        "Pipeline runs by status (per 5m)",
        [
            (
                "sum by (pipeline, status) "
                f"(increase(taskpipes_pipeline_runs_total{selector}[5m]))" + ZERO,
                "{{pipeline}} {{status}}",
            )
        ],
        "short",
    )


def failure_ratio(matcher: str) -> dict:
    """`matcher` is a label matcher without braces, or "" for all pipelines."""
    runs = f"sum by (pipeline) (increase(taskpipes_pipeline_runs_total{braces(matcher)}[30m]))"
    failed_only = braces(matcher, 'status=~"failed|dead"')
    failed = f"sum by (pipeline) (increase(taskpipes_pipeline_runs_total{failed_only}[30m]))"
    # `or 0 * runs`: a pipeline without failures shows 0, not a gap.
    return panel(
        "timeseries",
        "Failure ratio: failed + dead / all runs (30m)",
        [(f"({failed} or 0 * {runs}) / {runs}" + ZERO, "{{pipeline}}")],
        "percentunit",
        description="PipelineFailing fires above 20%.",
        thresholds=thresholds((0.2, "red")),
    )


def tick_lag(selector: str) -> dict:
    return panel(
        "timeseries",
        "Tick lag p50/p95/p99 (tick to finish)",
        quantiles(
            "taskpipes_pipeline_tick_lag_seconds", selector, "pipeline", "30m", "{{pipeline}}"
        ),
        "s",
    )


def stage_duration(selector: str, width: int) -> dict:
    return panel(
        "timeseries",
        "Stage duration p50/p95/p99",
        quantiles(
            "taskpipes_stage_duration_seconds",
            selector,
            "pipeline, stage",
            "30m",
            "{{pipeline}}/{{stage}}",
        ),
        "s",
        width=width,
    )


def stage_failures(selector: str) -> dict:
    return panel(
        "timeseries",
        "Stage failures by error (per 30m)",
        [
            (
                "sum by (pipeline, stage, error) "
                f"(increase(taskpipes_stage_failures_total{selector}[30m]))" + ZERO,
                "{{pipeline}}/{{stage}} {{error}}",
            )
        ],
        "short",
    )


def duplicate_ticks(selector: str) -> dict:
    return panel(
        "timeseries",
        "Duplicate ticks (per 30m)",
        [
            (
                "sum by (pipeline) "
                f"(increase(taskpipes_duplicate_ticks_total{selector}[30m]))" + ZERO,
                "{{pipeline}}",
            )
        ],
        "short",
        description="Expected while two schedulers run; DuplicateTicksHigh fires with one.",
    )


def dramatiq_messages(selector: str) -> dict:
    return panel(
        "timeseries",
        "Dramatiq messages processed and errors",
        [
            (
                f"sum by (queue_name) (rate(dramatiq_messages_total{selector}[5m]))" + ZERO,
                "{{queue_name}} processed",
            ),
            (
                f"sum by (queue_name) (rate(dramatiq_message_errors_total{selector}[5m]))" + ZERO,
                "{{queue_name}} errors",
            ),
        ],
        "ops",
        description="Dramatiq's own counters; retries are counted twice (Q.DQ and Q).",
    )


def overview() -> dict:
    api = "taskpipes_api_request_duration_seconds"
    panels = [
        freshness("", list(PERIODS), 12),
        panel(
            "stat",
            "Dead letters",
            [
                (
                    'sum(max by (queue) (taskpipes_queue_messages{state="dead"}))' + ZERO,
                    "dead letters",
                )
            ],
            "short",
            thresholds=thresholds((1, "red")),
            options={"colorMode": "background", "graphMode": "area"},
            width=6,
        ),
        panel(
            "stat",
            "Targets up",
            [('sum by (job) (up{job=~"worker|scheduler|api"})' + ZERO, "{{job}}")],
            "short",
            description="Scraped processes per job; SchedulerDown/WorkersDown fire at 0.",
            options={"colorMode": "value", "graphMode": "none", "textMode": "value_and_name"},
            width=6,
        ),
        runs_by_status(""),
        failure_ratio(""),
        tick_lag(""),
        stage_duration("", 12),
        stage_failures(""),
        duplicate_ticks(""),
        panel(
            "timeseries",
            "Rows written per table (per 15m)",
            [("sum by (table) (increase(taskpipes_rows_written_total[15m]))" + ZERO, "{{table}}")],
            "short",
        ),
        panel(
            "timeseries",
            "Queue depth by state",
            [
                (
                    "max by (queue, state) (taskpipes_queue_messages)" + ZERO,
                    "{{queue}} {{state}}",
                )
            ],
            "short",
            description="ready = Q, delayed = Q.DQ, dead = Q.XQ.",
        ),
        panel(
            "timeseries",
            "GitHub rate limit remaining",
            [
                (
                    "min by (resource) (taskpipes_github_ratelimit_remaining)" + NOTHING_YET,
                    "{{resource}}",
                )
            ],
            "short",
            description="Search allows 30 requests/min with a token; GitHubRateLimitLow under 6.",
            width=8,
        ),
        panel(
            "timeseries",
            "GitHub rate limit: time until reset",
            [
                (
                    "max by (resource) (taskpipes_github_ratelimit_reset_timestamp_seconds)"
                    " - time()" + NOTHING_YET,
                    "{{resource}}",
                )
            ],
            "s",
            width=8,
        ),
        panel(
            "timeseries",
            "GitHub requests by endpoint and code",
            [
                (
                    "sum by (endpoint, code) (rate(taskpipes_github_requests_total[5m]))" + ZERO,
                    "{{endpoint}} {{code}}",
                )
            ],
            "reqps",
            width=8,
        ),
        panel(
            "timeseries",
            "API latency p50/p95/p99",
            quantiles(api, "", "route", "5m", "{{route}}"),
            "s",
            width=8,
        ),
        panel(
            "timeseries",
            "API error rate (5xx share)",
            [
                (
                    f'(sum(rate({api}_count{{code=~"5.."}}[5m])){ZERO}) / '
                    f"sum(rate({api}_count[5m])){ZERO}",
                    "5xx share",
                )
            ],
            "percentunit",
            width=8,
        ),
        panel(
            "timeseries",
            "API requests by route and code",
            [(f"sum by (route, code) (rate({api}_count[5m]))" + ZERO, "{{route}} {{code}}")],
            "reqps",
            width=8,
        ),
        dramatiq_messages(""),
        panel(
            "timeseries",
            "Dramatiq messages in progress",
            [("sum by (queue_name) (dramatiq_messages_inprogress)" + ZERO, "{{queue_name}}")],
            "short",
            description="Sticks after a worker is SIGKILLed until its container restarts.",
        ),
    ]
    return dashboard("taskpipes-overview", "taskpipes / Overview", panels, [])


def pipeline() -> dict:
    selector = '{pipeline="$pipeline"}'
    queue = '{queue="$pipeline"}'
    panels = [
        freshness(selector, ["$pipeline"], 6),
        runs_by_status(selector) | {"_width": 18},
        failure_ratio('pipeline="$pipeline"'),
        tick_lag(selector),
        stage_duration(selector, 24),
        stage_failures(selector),
        duplicate_ticks(selector),
        panel(
            "timeseries",
            "Queue depth by state",
            [(f"max by (state) (taskpipes_queue_messages{queue})" + ZERO, "{{state}}")],
            "short",
            description="ready = Q, delayed = Q.DQ, dead = Q.XQ.",
        ),
        dramatiq_messages('{queue_name="$pipeline"}'),
    ]
    variable = {
        "name": "pipeline",
        "label": "Pipeline",
        "type": "query",
        "datasource": DATASOURCE,
        "query": "label_values(taskpipes_pipeline_runs_total, pipeline)",
        "definition": "label_values(taskpipes_pipeline_runs_total, pipeline)",
        "refresh": 2,
        "sort": 1,
        "multi": False,
        "includeAll": False,
        "current": {},
        "options": [],
    }
    return dashboard("taskpipes-pipeline", "taskpipes / Pipeline", panels, [variable])


def layout(panels: list[dict]) -> list[dict]:
    """Number the panels and flow them left to right into rows of 24 columns."""
    x = y = row_height = 0
    for number, p in enumerate(panels, start=1):
        width = p.pop("_width")
        height = 5 if p["type"] == "stat" else 8
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        p["id"] = number
        p["gridPos"] = {"x": x, "y": y, "w": width, "h": height}
        x, row_height = x + width, max(row_height, height)
    return panels


def dashboard(uid: str, title: str, panels: list[dict], variables: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "tags": ["taskpipes"],
        "timezone": "utc",
        "schemaVersion": 39,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": layout(panels),
    }


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        name: json.dumps(board, indent=2) + "\n"
        for name, board in (("overview.json", overview()), ("pipeline.json", pipeline()))
    }


if __name__ == "__main__":
    for name, text in render().items():
        (DASHBOARD_DIR / name).write_text(text)
