"""`pipeline_status` takes what a caller read by name, and defaults what it did not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskpipes.observe.report import PipelineStatus, RunRow, pipeline_status

NOW = datetime(2026, 8, 21, 12, 30, tzinfo=UTC)


def test_a_pipeline_with_nothing_read_has_no_runs_no_depths_and_no_freshness() -> None:
    assert pipeline_status("rollup", "rollup", now=NOW) == PipelineStatus(
        pipeline="rollup",
        queue="rollup",
        period=None,
        last_success=None,
        success_age_s=None,
        fresh=None,
        last_failure=None,
        in_progress=(),
        depths=None,
        depths_note=None,
        paused=None,
    )


def test_a_scheduled_pipeline_named_by_keyword_is_judged_from_its_last_success() -> None:
    success = RunRow(7, NOW - timedelta(minutes=15), "succeeded", None, None, None)
    status = pipeline_status(
        "github_top", "github_top", now=NOW, period=timedelta(minutes=10), last_success=success
    )
    assert (status.success_age_s, status.fresh) == (900.0, True)


def test_the_runs_cannot_be_passed_by_position() -> None:
    with pytest.raises(TypeError):
        pipeline_status("rollup", "rollup", None, None, None, [], None, None, NOW)  # type: ignore[misc]


def test_a_retried_run_says_who_retried_it_in_the_text_and_the_json() -> None:
    from taskpipes.observe.report import report_json, report_text

    # Given a pipeline whose last failure and run in progress were retried by ana
    at = NOW - timedelta(minutes=3)
    failure = RunRow(7, NOW - timedelta(hours=1), "failed", None, None, "c: boom", "ana", at)
    running = RunRow(8, NOW, "running", NOW, None, None, "ana", at)
    status = pipeline_status(
        "rollup", "rollup", now=NOW, last_failure=failure, in_progress=[running]
    )

    # Then `taskpipes status` names who and when (to the minute), and --json has both
    lines = report_text([status]).splitlines()
    assert any(
        line.endswith("failed (retried by ana at 2026-08-21T12:27+00:00): c: boom")
        for line in lines
    )
    assert any(
        "running since" in ln and ln.endswith("(retried by ana at 2026-08-21T12:27+00:00)")
        for ln in lines
    )
    shown = report_json([status], NOW)["pipelines"][0]["last_failure"]
    assert (shown["retried_by"], shown["retried_at"]) == ("ana", at.isoformat())
