"""The Grafana dashboards "taskpipes / Overview" and "taskpipes / Pipeline", built with
Grafana's own foundation SDK from the declared pipelines.

Every query returns data even before a counter has moved: rates and counts fall back to 0
(`or on() vector(0)`), quantiles and gauges to NaN (no value yet, drawn as a gap),
freshness to +Inf per declared pipeline (never succeeded = stale). `on()` matters: a plain
`or vector(0)` would add a label-less 0 next to grouped series.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from taskpipes.deploy.cadence import Cadence
from taskpipes.deploy.panels import (
    DATASOURCE,
    ZERO,
    Panel,
    braces,
    graph,
    headline,
    never_succeeded,
    quantiles,
    thresholds,
)


def freshness(
    selector: str, names: Sequence[str], scheduled: Sequence[Cadence], width: int
) -> Panel:
    """Time since each pipeline's last success: one series per pipeline, and per scheduled
    pipeline its own colours (orange after one schedule period, red after two, the
    PipelineStale rule)."""
    expr = (
        "time() - max by (pipeline) "
        f"(taskpipes_pipeline_last_success_timestamp_seconds{selector})" + never_succeeded(names)
    )
    built = headline(
        "Freshness: time since last success",
        [(expr, "{{pipeline}}")],
        "s",
        width,
        common.BigValueColorMode.BACKGROUND,
        common.BigValueTextMode.VALUE_AND_NAME,
        description="Orange after one schedule period, red after two (PipelineStale). "
        "Infinity: no success since the workers started.",
        limits=thresholds((600, "orange"), (1200, "red")),
    )
    for pipeline in scheduled:
        period = pipeline.period_seconds or 0
        colours = thresholds((period, "orange"), (2 * period, "red"))
        built.override_by_name(pipeline.name, [model.DynamicConfigValue("thresholds", colours)])
    return built


def runs_by_status(selector: str, width: int = 12) -> Panel:
    expr = f"sum by (pipeline, status) (increase(taskpipes_pipeline_runs_total{selector}[5m]))"
    return graph(
        "Pipeline runs by status (per 5m)",
        [(expr + ZERO, "{{pipeline}} {{status}}")],
        "short",
        width,
    )


def failure_ratio(matcher: str) -> Panel:
    """`matcher` is a label matcher without braces, or "" for all pipelines."""
    runs = f"sum by (pipeline) (increase(taskpipes_pipeline_runs_total{braces(matcher)}[30m]))"
    failed_only = braces(matcher, 'status=~"failed|dead"')
    failed = f"sum by (pipeline) (increase(taskpipes_pipeline_runs_total{failed_only}[30m]))"
    # `or 0 * runs`: a pipeline without failures shows 0, not a gap.
    return graph(
        "Failure ratio: failed + dead / all runs (30m)",
        [(f"({failed} or 0 * {runs}) / {runs}" + ZERO, "{{pipeline}}")],
        "percentunit",
        description="PipelineFailing fires above 20%.",
        limits=thresholds((0.2, "red")),
    )


def tick_lag(selector: str) -> Panel:
    return graph(
        "Tick lag p50/p95/p99 (tick to finish)",
        quantiles(
            "taskpipes_pipeline_tick_lag_seconds", selector, "pipeline", "30m", "{{pipeline}}"
        ),
        "s",
    )


def stage_duration(selector: str, width: int) -> Panel:
    return graph(
        "Stage duration p50/p95/p99",
        quantiles(
            "taskpipes_stage_duration_seconds",
            selector,
            "pipeline, stage",
            "30m",
            "{{pipeline}}/{{stage}}",
        ),
        "s",
        width,
    )


def stage_failures(selector: str) -> Panel:
    expr = (
        f"sum by (pipeline, stage, error) (increase(taskpipes_stage_failures_total{selector}[30m]))"
    )
    return graph(
        "Stage failures by error (per 30m)",
        [(expr + ZERO, "{{pipeline}}/{{stage}} {{error}}")],
        "short",
    )


def duplicate_ticks(selector: str) -> Panel:
    expr = f"sum by (pipeline) (increase(taskpipes_duplicate_ticks_total{selector}[30m]))"
    return graph(
        "Duplicate ticks (per 30m)",
        [(expr + ZERO, "{{pipeline}}")],
        "short",
        description="Expected while two schedulers run; DuplicateTicksHigh fires with one.",
    )


def queue_depth(expr: str, legend: str) -> Panel:
    return graph(
        "Queue depth by state",
        [(expr + ZERO, legend)],
        "short",
        description="ready = Q, delayed = Q.DQ, dead = Q.XQ.",
    )


def dramatiq_messages(selector: str) -> Panel:
    return graph(
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


def api_panels() -> list[Panel]:
    api = "taskpipes_api_request_duration_seconds"
    return [
        graph(
            "API latency p50/p95/p99",
            quantiles(api, "", "route", "5m", "{{route}}"),
            "s",
            8,
        ),
        graph(
            "API error rate (5xx share)",
            [
                (
                    f'(sum(rate({api}_count{{code=~"5.."}}[5m])){ZERO}) / '
                    f"sum(rate({api}_count[5m])){ZERO}",
                    "5xx share",
                )
            ],
            "percentunit",
            8,
        ),
        graph(
            "API requests by route and code",
            [(f"sum by (route, code) (rate({api}_count[5m]))" + ZERO, "{{route}} {{code}}")],
            "reqps",
            8,
        ),
    ]


def overview(pipelines: Sequence[Cadence], application: Sequence[Panel]) -> board.Dashboard:
    """The kit's panels, the application's (`application`) after those of the pipelines."""
    scheduled = [p for p in pipelines if p.scheduled]
    panels: list[Panel] = [
        freshness("", [p.name for p in scheduled], scheduled, 12),
        headline(
            "Dead letters",
            [
                (
                    'sum(max by (queue) (taskpipes_queue_messages{state="dead"}))' + ZERO,
                    "dead letters",
                )
            ],
            "short",
            6,
            common.BigValueColorMode.BACKGROUND,
            graph_mode=common.BigValueGraphMode.AREA,
            limits=thresholds((1, "red")),
        ),
        headline(
            "Targets up",
            [('sum by (job) (up{job=~"worker|scheduler|api"})' + ZERO, "{{job}}")],
            "short",
            6,
            common.BigValueColorMode.VALUE,
            common.BigValueTextMode.VALUE_AND_NAME,
            description="Scraped processes per job; SchedulerDown/WorkersDown fire at 0.",
        ),
        runs_by_status(""),
        failure_ratio(""),
        tick_lag(""),
        stage_duration("", 12),
        stage_failures(""),
        duplicate_ticks(""),
        graph(
            "Rows written per table (per 15m)",
            [("sum by (table) (increase(taskpipes_rows_written_total[15m]))" + ZERO, "{{table}}")],
            "short",
        ),
        queue_depth("max by (queue, state) (taskpipes_queue_messages)", "{{queue}} {{state}}"),
        *application,
        *api_panels(),
        dramatiq_messages(""),
        graph(
            "Dramatiq messages in progress",
            [("sum by (queue_name) (dramatiq_messages_inprogress)" + ZERO, "{{queue_name}}")],
            "short",
            description="Sticks after a worker is SIGKILLed until its container restarts.",
        ),
    ]
    return dashboard("taskpipes-overview", "taskpipes / Overview", panels)


def pipeline(pipelines: Sequence[Cadence]) -> board.Dashboard:
    selector = '{pipeline="$pipeline"}'
    scheduled = [p for p in pipelines if p.scheduled]
    panels: list[Panel] = [
        freshness(selector, ["$pipeline"], scheduled, 6),
        runs_by_status(selector, 18),
        failure_ratio('pipeline="$pipeline"'),
        tick_lag(selector),
        stage_duration(selector, 24),
        stage_failures(selector),
        duplicate_ticks(selector),
        queue_depth('max by (state) (taskpipes_queue_messages{queue="$pipeline"})', "{{state}}"),
        dramatiq_messages('{queue_name="$pipeline"}'),
    ]
    variable = (
        board.QueryVariable("pipeline")
        .label("Pipeline")
        .datasource(DATASOURCE)
        .query("label_values(taskpipes_pipeline_runs_total, pipeline)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    return dashboard("taskpipes-pipeline", "taskpipes / Pipeline", panels).with_variable(variable)


def dashboard(uid: str, title: str, panels: Sequence[Panel]) -> board.Dashboard:
    """Panels numbered in order; the SDK flows them left to right into rows of 24 columns."""
    built = (
        board.Dashboard(title)
        .uid(uid)
        .tags(["taskpipes"])
        .timezone("utc")
        .readonly()
        .refresh("30s")
        .time("now-6h", "now")
        .variables([])
    )
    for number, each in enumerate(panels, start=1):
        built.with_panel(each.id(number))
    return built


def render(pipelines: Sequence[Cadence], application: Sequence[Panel] = ()) -> dict[str, str]:
    """File name -> JSON text of every dashboard; `application` are the application's own
    panels for the overview."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    boards = (("overview", overview(pipelines, application)), ("pipeline", pipeline(pipelines)))
    return {f"{name}.json": encoder.encode(built.build()) + "\n" for name, built in boards}
