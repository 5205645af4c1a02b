"""stargazers actors: tick -> plan -> waves of delayed page messages -> close on the last page.

The plan stage writes the page plan; a wave message sends the next few page messages with
delays one gap apart and schedules the next wave, so no delay exceeds MAX_DELAY_S however
long the plan. Each page is an independent message; the run closes when every planned
page is stored (a counter in our own database: there is no Redis for group callbacks).
"""

from __future__ import annotations

import time

import dramatiq

from actors.stage import complete_run, hand_off, is_final, run_stage, stage_options
from actors.ticks import start_tick
from db.session import begin
from pipelines import runs, spread
from pipelines import stargazers as pipeline
from pipelines.errors import RateLimited
from pipelines.github import github_client
from pipelines.runs import utcnow
from pipelines.schedule import EVERY_MINUTE
from taskpipes import metrics
from taskpipes.settings import get_settings

QUEUE = "stargazers"
SCHEDULE = pipeline.SCHEDULE
# Transient failures back off from 2 s to 5 min, 6 tries in all. Time limits stay far
# below RabbitMQ's 30-minute consumer_timeout: a page or a wave takes seconds.
SHORT_TIME_LIMIT_MS = 2 * 60 * 1000
SHORT_OPTIONS = stage_options(QUEUE, 5, 2_000, 300_000, SHORT_TIME_LIMIT_MS)
PLAN_OPTIONS = stage_options(QUEUE, 5, 2_000, 300_000)


@dramatiq.actor(**SHORT_OPTIONS)
def stargazers_tick(
    tick: str | None = None,
    explicit: bool = False,
    repo: str | None = None,
    rate: int | None = None,
    api_rate: int | None = None,
) -> None:
    options = pipeline.RunOptions(
        repo=repo,
        rate=rate or spread.DEFAULT_RATE,
        api_rate=api_rate or spread.default_api_rate(bool(get_settings().github_token)),
    )
    start_tick(
        pipeline.PIPELINE,
        EVERY_MINUTE,
        tick,
        explicit,
        stargazers_plan,
        prepare=lambda session, run_id: pipeline.record_options(session, run_id, options),
    )


@dramatiq.actor(**PLAN_OPTIONS)
def stargazers_plan(run_id: int) -> None:
    with github_client() as client:
        run_stage(
            pipeline.PIPELINE,
            "plan",
            run_id,
            lambda: pipeline.plan(run_id, client, utcnow()),
            stargazers_wave,
        )


@dramatiq.actor(**SHORT_OPTIONS)
def stargazers_wave(run_id: int, wave: int = 0) -> None:
    """Send the next wave of pages, then schedule the wave after it."""
    with begin() as session:
        taken = pipeline.take_wave(session, run_id, wave, utcnow())
        if taken is None:
            return  # a duplicate delivery, or the run is over
        if taken.wait_s:
            # Too early: a wait longer than MAX_DELAY_S is walked in steps.
            hand_off(stargazers_wave, run_id, wave, delay_s=taken.wait_s)
            return
        # Sent before the commit: a crash now re-sends this wave, and a page stores once.
        delays = spread.wave_delays(len(taken.pages), taken.gap_s)
        for (repo_id, page), delay in zip(taken.pages, delays, strict=True):
            hand_off(stargazers_page, run_id, repo_id, page, delay_s=delay)
        if taken.more:
            hand_off(stargazers_wave, run_id, wave + 1, delay_s=len(taken.pages) * taken.gap_s)
    if not taken.more:
        close_if_done(run_id)


@dramatiq.actor(**SHORT_OPTIONS)
def stargazers_page(run_id: int, repo_id: int, page: int) -> None:
    job = pipeline.page_job(run_id, repo_id, page)
    if job is None or job.run_status != "running":
        return  # the run was re-planned, failed or closed: this page is no longer wanted
    if not job.stored:
        started = time.monotonic()
        try:
            with github_client() as client:
                stars = pipeline.fetch_page(client, job)
            with begin() as session:
                pipeline.store_page(session, run_id, repo_id, page, stars, utcnow())
        except RateLimited as exc:
            # Wait exactly as long as GitHub asked, without spending a retry.
            hand_off(stargazers_page, run_id, repo_id, page, delay_s=exc.wait_seconds)
            return
        except Exception as exc:
            page_failed(run_id, job, exc, time.monotonic() - started)
            raise
        metrics.stage_attempt(
            pipeline.PIPELINE, pipeline.PAGES_STAGE, time.monotonic() - started, None
        )
    close_if_done(run_id)


def page_failed(run_id: int, job: pipeline.PageJob, exc: Exception, seconds: float) -> None:
    """Fail the run when this page will not be tried again; a retry records nothing."""
    metrics.stage_attempt(pipeline.PIPELINE, pipeline.PAGES_STAGE, seconds, type(exc).__name__)
    if not is_final(exc):
        return
    error = f"pages: {job.full_name} page {job.page}: {type(exc).__name__}: {exc}"
    with begin() as session:
        runs.fail_stage(session, run_id, pipeline.PAGES_STAGE, error, seconds)
    complete_run(run_id, "failed", error)


def close_if_done(run_id: int) -> None:
    """Close the run once every planned page is stored; any page may call this, often."""
    with begin() as session:
        progress = pipeline.progress(session, run_id)
        if progress is None or progress.status != "running" or progress.done < progress.planned:
            return
        pipeline.finish_pages_stage(session, run_id, progress.rows, utcnow())
    complete_run(run_id, "succeeded")
