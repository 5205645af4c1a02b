"""Panel builders over Grafana's foundation SDK: every panel queries the provisioned
Prometheus datasource, and every query has a fallback so that it draws before its metric
exists (see taskpipes.deploy.dashboards)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

# The fixed uid of the provisioned Prometheus datasource (deploy/grafana/provisioning).
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="taskpipes-prometheus")
ZERO = " or on() vector(0)"
NOTHING_YET = " or on() vector(NaN)"
QUANTILES = (0.5, 0.95, 0.99)
# Grid heights: a headline number, a graph.
STAT_HEIGHT, GRAPH_HEIGHT = 5, 8

Query = tuple[str, str]  # (PromQL, legend)
Panel = stat.Panel | timeseries.Panel
AnyPanel = TypeVar("AnyPanel", stat.Panel, timeseries.Panel)


def braces(*matchers: str) -> str:
    """A selector from label matchers, skipping empty ones: `{a="1", b="2"}` or ``."""
    present = [m for m in matchers if m]
    return "{" + ", ".join(present) + "}" if present else ""


def thresholds(*steps: tuple[float, str]) -> model.ThresholdsConfig:
    return model.ThresholdsConfig(
        mode=model.ThresholdsMode.ABSOLUTE,
        steps=[model.Threshold(None, "green")] + [model.Threshold(v, c) for v, c in steps],
    )


def graph(
    title: str,
    queries: Sequence[Query],
    unit: str,
    width: int = 12,
    description: str = "",
    limits: model.ThresholdsConfig | None = None,
) -> timeseries.Panel:
    return _fill(timeseries.Panel(), title, queries, unit, width, description, limits)


def headline(
    title: str,
    queries: Sequence[Query],
    unit: str,
    width: int,
    colors: common.BigValueColorMode,
    text: common.BigValueTextMode = common.BigValueTextMode.AUTO,
    graph_mode: common.BigValueGraphMode = common.BigValueGraphMode.NONE,
    description: str = "",
    limits: model.ThresholdsConfig | None = None,
) -> stat.Panel:
    """A stat panel: big numbers, coloured by `colors`."""
    built = _fill(stat.Panel(), title, queries, unit, width, description, limits)
    built.color_mode(colors).graph_mode(graph_mode).text_mode(text)
    # Grafana's own default, written out: the SDK would write an empty list of reducers.
    return built.reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))


def _fill(
    built: AnyPanel,
    title: str,
    queries: Sequence[Query],
    unit: str,
    width: int,
    description: str,
    limits: model.ThresholdsConfig | None,
) -> AnyPanel:
    """Title, queries on the Prometheus datasource, unit and size; the dashboard numbers
    and places the panel."""
    height = STAT_HEIGHT if isinstance(built, stat.Panel) else GRAPH_HEIGHT
    built.title(title).description(description).datasource(DATASOURCE).unit(unit)
    built.span(width).height(height)
    for number, (expr, legend) in enumerate(queries):
        built.with_target(
            prometheus.Dataquery()
            .ref_id(chr(ord("A") + number))
            .datasource(DATASOURCE)
            .expr(expr)
            .legend_format(legend)
            .range()
        )
    if limits is not None:
        built.thresholds(board.ThresholdsConfig().mode(limits.mode).steps(limits.steps))
        built.color_scheme(board.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
    return built


def quantiles(histogram: str, selector: str, by: str, window: str, legend: str) -> list[Query]:
    group = f"{by}, le" if by else "le"
    buckets = f"sum by ({group}) (rate({histogram}_bucket{selector}[{window}]))"
    return [
        (f"histogram_quantile({q}, {buckets})" + NOTHING_YET, f"{legend} p{round(q * 100)}")
        for q in QUANTILES
    ]


def never_succeeded(names: Sequence[str]) -> str:
    """+Inf labelled with each pipeline: one without a success yet still shows, as stale.

    `or` keeps a pipeline's real value and adds the +Inf only where its series is missing;
    a single label-less fallback would vanish as soon as any other pipeline succeeded.
    """
    return "".join(
        f' or label_replace(vector(Inf), "pipeline", "{name}", "", "")' for name in names
    )
