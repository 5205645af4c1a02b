"""The pure core of the web pages: SVG point lists, chart frames, ages, cache validators.

Plain values in, strings and numbers out: no database, no clock (callers pass `now`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskpipes.observe.report import human_duration

# A sparkline's viewBox: one unit of x per hour of its 7-day window, SPARK_HEIGHT high.
SPARK_HOURS = 7 * 24
SPARK_HEIGHT = 24
# A chart's viewBox and the margin kept free inside it for the line's stroke.
CHART_WIDTH = 600
CHART_HEIGHT = 160
CHART_PAD = 4


def scaled(value: float, low: float, high: float, size: float) -> float:
    """`value` placed on [0, size] as `low`..`high` maps to it; a flat range sits midway."""
    if high <= low:
        return size / 2
    return (value - low) / (high - low) * size


def _number(value: float) -> str:
    """A coordinate with at most one decimal and no trailing zeros: short SVG."""
    text = f"{round(value, 1):.1f}"
    return text[:-2] if text.endswith(".0") else text


def points_attr(points: Sequence[tuple[float, float]]) -> str:
    """The `points` attribute of an SVG polyline."""
    return " ".join(f"{_number(x)},{_number(y)}" for x, y in points)


def sparkline_points(hours: Sequence[int], stars: Sequence[int]) -> str:
    """Polyline points of a 7-day sparkline: x is the hour in the window (0..167), y the
    stars, highest at the top of a SPARK_HEIGHT-high box."""
    if not stars:
        return ""
    low, high = min(stars), max(stars)
    return points_attr(
        [
            (hour, SPARK_HEIGHT - scaled(count, low, high, SPARK_HEIGHT))
            for hour, count in zip(hours, stars, strict=True)
        ]
    )


@dataclass(frozen=True)
class Frame:
    """The data ranges a chart maps onto its viewBox; `inverted` puts the lowest y on top
    (a rank: 1 is best)."""

    x_low: float
    x_high: float
    y_low: float
    y_high: float
    inverted: bool = False

    def point(self, x: float, y: float) -> tuple[float, float]:
        inner_w, inner_h = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD
        left = CHART_PAD + scaled(x, self.x_low, self.x_high, inner_w)
        height = scaled(y, self.y_low, self.y_high, inner_h)
        top = CHART_PAD + (height if self.inverted else inner_h - height)
        return left, top


def frame_of(series: Sequence[Sequence[tuple[float, float]]], inverted: bool = False) -> Frame:
    """The frame holding every point of every series (which must not all be empty)."""
    xs = [x for points in series for x, _ in points]
    ys = [y for points in series for _, y in points]
    return Frame(min(xs), max(xs), min(ys), max(ys), inverted)


def chart_points(frame: Frame, points: Sequence[tuple[float, float]]) -> str:
    return points_attr([frame.point(x, y) for x, y in points])


def age_text(as_of: datetime, now: datetime) -> str:
    """How old data made at `as_of` is at `now`: `12m 5s old`."""
    return f"{human_duration((now - as_of).total_seconds())} old"


def entity_tag(*version: object) -> str:
    """A weak ETag from the data's version: the page may differ in its age text only."""
    digest = hashlib.sha256(repr(version).encode()).hexdigest()[:20]
    return f'W/"{digest}"'


def tag_matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names `tag` (weak comparison, `*` matches all)."""
    if not if_none_match:
        return False
    opaque = tag.removeprefix("W/")
    offered = [part.strip().removeprefix("W/") for part in if_none_match.split(",")]
    return "*" in offered or opaque in offered


def seconds_until(now: datetime, next_tick: datetime) -> int:
    """A Cache-Control max-age: whole seconds until `next_tick`, at least 1."""
    return max(1, math.ceil((next_tick - now) / timedelta(seconds=1)))


def evenly(first: int, last: int, most: int) -> list[int]:
    """At most `most` integers from `first` to `last`, evenly spread, both ends included."""
    if last <= first:
        return [first]
    count = min(most, last - first + 1)
    step = (last - first) / (count - 1)
    return sorted({first + round(i * step) for i in range(count)})


@dataclass(frozen=True)
class Line:
    label: str
    # The CSS class that styles it (colour, dashes): each line looks different.
    style: str
    points: str


@dataclass(frozen=True)
class Chart:
    """An SVG line chart and the words that stand for it (title and description)."""

    title: str
    description: str
    lines: tuple[Line, ...]
    x_first: str
    x_last: str
    y_top: str
    y_bottom: str
    # "log" when values are placed by their logarithm, else "linear".
    scale: str = "linear"


Series = tuple[str, str, Sequence[tuple[datetime, int]]]


def line_chart(
    title: str,
    series: Sequence[Series],
    inverted: bool = False,
    unit: str = "stars",
    log: bool = False,
) -> Chart | None:
    """A chart of one or more (label, style, [(time, value)]) series on a shared frame;
    None when there is no point at all. `inverted` puts the lowest value on top; `log`
    places values by their logarithm (a value below 1 sits at 1)."""
    drawn = [(label, style, values) for label, style, values in series if values]
    if not drawn:
        return None
    place = (lambda v: math.log10(max(v, 1))) if log else float
    numeric = [[(t.timestamp(), place(v)) for t, v in values] for _, _, values in drawn]
    frame = frame_of(numeric, inverted)
    times = [t for _, _, values in drawn for t, _ in values]
    counts = [v for _, _, values in drawn for _, v in values]
    low, high = int(min(counts)), int(max(counts))
    parts = [
        f"{label}: {values[0][1]:,} on {day(values[0][0])} to {values[-1][1]:,} on "
        f"{day(values[-1][0])}"
        for label, _, values in drawn
    ]
    return Chart(
        title=title,
        description=f"{unit.capitalize()} over time. " + "; ".join(parts) + ".",
        lines=tuple(
            Line(label, style, chart_points(frame, points))
            for (label, style, _), points in zip(drawn, numeric, strict=True)
        ),
        x_first=moment_text(min(times)),
        x_last=moment_text(max(times)),
        y_top=f"{low if inverted else high:,}",
        y_bottom=f"{high if inverted else low:,}",
        scale="log" if log else "linear",
    )


def day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def moment_text(moment: datetime) -> str:
    """`2026-08-21 13:00 UTC`."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")
