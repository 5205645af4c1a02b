"""stargazers' fan-out: waves of delayed page messages, closed by the last page stored.

The kit hands the planned run to `stargazers_wave`; a wave sends the next few page
messages with delays one gap apart and schedules the next wave, so no delay exceeds
MAX_DELAY_S however long the plan. Each page is an independent message; the run closes
when every planned page is stored (a counter in our own database: there is no Redis for
group callbacks).
"""

from __future__ import annotations

import time

import taskpipes
from pipelines import spread
from pipelines import stargazers as pipeline
from pipelines.github import github_client
from pipelines.github_errors import RateLimited
from taskpipes import close_fan_out, fail_fan_out, hand_off, is_final
from taskpipes.declare import clock
from taskpipes.observe import metrics
from taskpipes.store import runs
from taskpipes.store.database import begin

actor = taskpipes.actor(pipeline.stargazers)


@actor
def stargazers_wave(run_id: int, wave: int = 0) -> None:
    """Send the next wave of pages, then schedule the wave after it."""
    with begin() as session:
        taken = pipeline.take_wave(session, run_id, wave, clock.now())
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


@actor
def stargazers_page(run_id: int, repo_id: int, page: int) -> None:
    job = pipeline.page_job(run_id, repo_id, page)
    if job is None or job.run_status != runs.RUNNING:
        return  # the run was re-planned, failed or closed: this page is no longer wanted
    if not job.stored:
        started = time.monotonic()
        try:
            with github_client() as client:
                stars = pipeline.fetch_page(client, job)
            with begin() as session:
                pipeline.store_page(session, run_id, repo_id, page, stars, clock.now())
        except RateLimited as exc:
            # Wait exactly as long as GitHub asked, without spending a retry.
            hand_off(stargazers_page, run_id, repo_id, page, delay_s=exc.wait_seconds)
            return
        except Exception as exc:
            page_failed(run_id, job, exc, time.monotonic() - started)
            raise
        metrics.stage_attempt(pipeline.PIPELINE, pipeline.PAGES, time.monotonic() - started, None)
    close_if_done(run_id)


def page_failed(run_id: int, job: pipeline.PageJob, exc: Exception, seconds: float) -> None:
    """Fail the run when this page will not be tried again; a retry records nothing."""
    metrics.stage_attempt(pipeline.PIPELINE, pipeline.PAGES, seconds, type(exc).__name__)
    if is_final(exc):
        error = f"pages: {job.full_name} page {job.page}: {type(exc).__name__}: {exc}"
        fail_fan_out(run_id, pipeline.PAGES, error, seconds)


def close_if_done(run_id: int) -> None:
    """Close the run once every planned page is stored; any page may call this, often."""
    close_fan_out(run_id, pipeline.PAGES, lambda session: pipeline.rows_if_done(session, run_id))
