"""A declaration becomes actors: `<name>_tick` and one `<name>_<stage>` per stage.

The names, queues and message shapes are the ones messages already in RabbitMQ carry
(a tick's kwargs `tick`, `explicit` and the pipeline's tick options; a stage's single
run id), so delayed messages and replayed dead letters still route after an upgrade.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq

from taskpipes.declare.errors import PermanentError
from taskpipes.declare.pipeline import FanOut, Pipeline, Retries, Stage
from taskpipes.declare.schedule import periodic_option
from taskpipes.declare.settings import get_settings
from taskpipes.runtime import stages, ticks
from taskpipes.runtime.current import current_broker


def actor(
    pipeline: Pipeline, retries: Retries | None = None
) -> Callable[[Callable[..., None]], dramatiq.Actor]:
    """Decorate an application actor of `pipeline` (a fan-out's): it gets the pipeline's
    queue and retry options, and keeps its function's name."""

    def decorate(fn: Callable[..., None]) -> dramatiq.Actor:
        options = actor_options(pipeline.queue_name, retries or pipeline.retries)
        return make_actor(current_broker(), fn, fn.__name__, options)

    return decorate


def declared_actors(pipeline: Pipeline) -> None:
    """Build the actors of a pipeline declared after `taskpipes.start()`."""
    pipeline_actors(current_broker(), pipeline)


def make_actor(
    broker: dramatiq.Broker, fn: Callable[..., None], name: str, options: dict[str, Any]
) -> dramatiq.Actor:
    return dramatiq.actor(actor_name=name, broker=broker, **options)(fn)


def actor_options(
    queue: str, retries: Retries, fail_fast: tuple[type[Exception], ...] = ()
) -> dict[str, Any]:
    """Every actor's options, written out (Retries says why); a PermanentError is final,
    and so are the exceptions a stage declares `fail_fast`."""
    return {
        "queue_name": queue,
        "max_retries": retries.max,
        "min_backoff": retries.min_backoff_ms or get_settings().retry_min_backoff_ms,
        "max_backoff": retries.max_backoff_ms,
        "time_limit": retries.time_limit_ms,
        "throws": (PermanentError, *fail_fast),
    }


def pipeline_actors(broker: dramatiq.Broker, pipeline: Pipeline) -> None:
    first = pipeline.stages[0]
    # The tick message runs its first stage when it can (ticks.shares_tick_message).
    fail_fast = first.fail_fast if ticks.shares_tick_message(first) else ()
    options = actor_options(pipeline.queue_name, pipeline.retries, fail_fast)
    if pipeline.schedule is not None:
        options |= {"periodic": periodic_option(pipeline.schedule), "schedule": pipeline.schedule}

    def tick(tick: str | None = None, explicit: bool = False, **tick_options: Any) -> None:
        ticks.start_tick(pipeline, tick, explicit, tick_options)

    make_actor(broker, tick, pipeline.actor_name("tick"), options)
    for stage in pipeline.stages:
        if isinstance(stage, Stage):
            _stage_actor(broker, pipeline, stage)
        else:
            assert isinstance(stage, FanOut)  # the application builds a fan-out's actors


def _stage_actor(broker: dramatiq.Broker, pipeline: Pipeline, stage: Stage) -> None:
    def work(run_id: int) -> None:
        stages.run_stage(pipeline, stage, run_id)

    options = actor_options(pipeline.queue_name, stage.retries or pipeline.retries, stage.fail_fast)
    make_actor(broker, work, pipeline.actor_name(stage.name), options)
