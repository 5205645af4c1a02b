"""github_top actors: tick -> fetch -> normalize -> store -> aggregate."""

from __future__ import annotations

import dramatiq

from actors.stage import complete_run, hand_off, redeliver_later, run_stage, stage_options
from actors.ticks import effective_schedule, start_tick
from pipelines import github_top as pipeline
from pipelines.errors import RateLimited, SuspectSnapshot
from pipelines.github import github_client
from pipelines.runs import utcnow
from pipelines.schedule import periodic_option
from taskpipes.settings import get_settings

QUEUE = "github_top"
SCHEDULE = effective_schedule(pipeline.PIPELINE, pipeline.SCHEDULE)
# Transient failures (5xx, timeouts) back off from 2 s to 5 min with jitter, 6 tries in all;
# a whole run then fits well inside one 10-minute period. Tests shrink the first backoff
# (TASKPIPES_RETRY_MIN_BACKOFF_MS) so a failing message dead-letters in seconds.
RETRY_OPTIONS = stage_options(QUEUE, 5, get_settings().retry_min_backoff_ms, 300_000)
# Suspect answers are fetched again after this many seconds, doubling each time.
SUSPECT_REFETCH_S = 5


@dramatiq.actor(periodic=periodic_option(SCHEDULE), schedule=SCHEDULE, **RETRY_OPTIONS)
def github_top_tick(tick: str | None = None, explicit: bool = False) -> None:
    start_tick(pipeline.PIPELINE, SCHEDULE, tick, explicit, github_top_fetch)


@dramatiq.actor(**RETRY_OPTIONS)
def github_top_fetch(run_id: int) -> None:
    try:
        with github_client() as client:
            run_stage(
                pipeline.PIPELINE,
                "fetch",
                run_id,
                lambda: pipeline.fetch(run_id, client, utcnow()),
                github_top_normalize,
                deferrable=(RateLimited,),
            )
    except RateLimited as exc:
        # Wait exactly as long as GitHub asked, without spending a retry.
        redeliver_later(run_id, exc.wait_seconds)


@dramatiq.actor(**RETRY_OPTIONS)
def github_top_normalize(run_id: int) -> None:
    try:
        run_stage(
            pipeline.PIPELINE,
            "normalize",
            run_id,
            lambda: len(pipeline.normalize(run_id).records),
            github_top_store,
            deferrable=(SuspectSnapshot,),
        )
    except SuspectSnapshot as exc:
        refetch_suspect(run_id, exc)


def refetch_suspect(run_id: int, exc: SuspectSnapshot) -> None:
    """Fetch again later; after MAX_SUSPECT_FETCHES suspect answers the run fails."""
    fetched = pipeline.suspect_fetches(run_id)
    if fetched >= pipeline.MAX_SUSPECT_FETCHES:
        error = f"normalize: {exc} ({fetched} suspect answers in a row; nothing stored)"
        complete_run(run_id, "failed", error)
        return
    pipeline.refetch(run_id)
    hand_off(github_top_fetch, run_id, delay_s=SUSPECT_REFETCH_S * 2 ** (fetched - 1))


@dramatiq.actor(**RETRY_OPTIONS)
def github_top_store(run_id: int) -> None:
    run_stage(
        pipeline.PIPELINE,
        "store",
        run_id,
        lambda: pipeline.store(run_id, utcnow()),
        github_top_aggregate,
    )


@dramatiq.actor(**RETRY_OPTIONS)
def github_top_aggregate(run_id: int) -> None:
    run_stage(pipeline.PIPELINE, "aggregate", run_id, lambda: pipeline.aggregate(run_id), None)
