"""The pure core of the web pages: points, frames, ages, cache validators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pipelines.buckets import BUCKET, Bucket, Close, Point, coarsen, points_between
from pipelines.charts import (
    Frame,
    entity_tag,
    evenly,
    line_chart,
    points_attr,
    scaled,
    seconds_until,
    sparkline_points,
    tag_matches,
)
from pipelines.history_reads import spaced

T = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)


def test_scaled_maps_the_range_and_puts_a_flat_one_midway() -> None:
    assert scaled(15, 10, 20, 100) == 50
    assert scaled(10, 10, 20, 100) == 0
    assert scaled(7, 7, 7, 24) == 12


def test_points_attr_is_short() -> None:
    assert points_attr([(0, 24.0), (1.25, 3.333), (167, 0.04)]) == "0,24 1.2,3.3 167,0"


def test_sparkline_points_put_the_most_stars_on_top() -> None:
    assert sparkline_points([0, 1, 3], [100, 150, 200]) == "0,24 1,12 3,0"
    assert sparkline_points([5], [42]) == "5,12"
    assert sparkline_points([], []) == ""


def test_a_frame_inverts_for_ranks() -> None:
    frame = Frame(0, 10, 1, 100, inverted=True)
    assert frame.point(0, 1) == (4, 4)
    assert frame.point(10, 100) == (596, 156)
    assert Frame(0, 10, 1, 100).point(0, 1) == (4, 156)


def test_line_chart_describes_every_series() -> None:
    chart = line_chart(
        "Star history",
        [("ours", "line-ours", [(T, 1000), (T + timedelta(days=1), 1500)]), ("none", "x", [])],
    )
    assert chart is not None
    assert chart.description == "Stars over time. ours: 1,000 on 2026-08-21 to 1,500 on 2026-08-22."
    assert [line.points for line in chart.lines] == ["4,156 596,4"]
    assert (chart.x_first, chart.x_last) == ("2026-08-21 12:00 UTC", "2026-08-22 12:00 UTC")
    assert (chart.y_top, chart.y_bottom) == ("1,500", "1,000")
    assert line_chart("empty", [("a", "b", [])]) is None


def test_evenly_keeps_both_ends() -> None:
    assert evenly(0, 10, 3) == [0, 5, 10]
    assert evenly(0, 3, 10) == [0, 1, 2, 3]
    assert evenly(5, 5, 10) == [5]
    assert spaced(T, T + timedelta(hours=1, seconds=30), 3) == [
        T,
        T + timedelta(minutes=30),
        T + timedelta(hours=1, seconds=30),
    ]


def test_max_age_runs_to_the_next_tick_and_is_at_least_one_second() -> None:
    assert seconds_until(T, T + timedelta(minutes=7, seconds=0.2)) == 421
    assert seconds_until(T, T) == 1
    assert seconds_until(T, T - timedelta(seconds=5)) == 1


def test_entity_tags_are_weak_stable_and_compared_weakly() -> None:
    tag = entity_tag("top", "24h", T, None)
    assert tag == entity_tag("top", "24h", T, None)
    assert tag != entity_tag("top", "24h", T, ("github_top",))
    assert tag.startswith('W/"') and len(tag) == 24
    assert tag_matches(tag, tag)
    assert tag_matches(f'"x", {tag.removeprefix("W/")}', tag)
    assert tag_matches("*", tag)
    assert not tag_matches('"x"', tag)
    assert not tag_matches(None, tag)


def test_points_between_reads_the_1h_history_off_closes() -> None:
    # Buckets at 12:00, 12:15, 13:45 (none in the 14:00 hour), 15:00
    closes = {
        T: Close(T, 100),
        T + BUCKET: Close(T + BUCKET, 110),
        T + 7 * BUCKET: Close(T + 7 * BUCKET, 130),
        T + 12 * BUCKET: Close(T + 12 * BUCKET, 150),
    }
    bounds = [T + timedelta(hours=h) for h in range(4)] + [T + timedelta(hours=3, minutes=30)]

    def latest(moment: datetime) -> Close | None:
        before = [c for start, c in closes.items() if start < moment]
        return before[-1] if before else None

    assert points_between(bounds, [latest(b) for b in bounds]) == [
        Point(T, 110, None),
        Point(T + timedelta(hours=1), 130, 20),
        Point(T + timedelta(hours=3), 150, 20),
    ]


@given(
    st.lists(
        st.tuples(st.integers(0, 95), st.integers(0, 50)),
        min_size=1,
        max_size=40,
        unique_by=lambda x: x[0],
    )
)
def test_points_between_equals_coarsen(rows: list[tuple[int, int]]) -> None:
    """Reading 1h points off one close per hour boundary gives the merged buckets."""
    rows.sort()
    stars, buckets, before = 1000, [], None
    for slot, gain in rows:
        stars += gain
        start = T + slot * BUCKET
        buckets.append(Bucket(1, start, start, stars, None if before is None else stars - before))
        before = stars
    bounds = [T + timedelta(hours=h) for h in range(25)]
    closes = []
    for bound in bounds:
        before_bound = [b for b in buckets if b.start < bound]
        closes.append(
            Close(before_bound[-1].start, before_bound[-1].stars) if before_bound else None
        )
    merged = coarsen(buckets, timedelta(hours=1))
    assert points_between(bounds, closes) == [
        Point(b.start, b.stars, b.stars_gained) for b in merged
    ]
