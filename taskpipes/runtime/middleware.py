"""Middleware that fixes what periodiq and RabbitMQ redelivery get wrong for us."""

from __future__ import annotations

import logging
from datetime import datetime

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware, SkipMessage
from periodiq import PeriodiqMiddleware
from sqlalchemy import delete, update
from sqlalchemy.exc import SQLAlchemyError

from taskpipes.declare import clock
from taskpipes.declare.schedule import Schedule
from taskpipes.declare.settings import get_settings
from taskpipes.observe import metrics
from taskpipes.rabbitmq import queues as rabbit
from taskpipes.runtime.stages import complete_run
from taskpipes.store import runs
from taskpipes.store.database import begin, retrying, size_pool
from taskpipes.store.tables import MessageDelivery
from taskpipes.store.upsert import upsert

logger = logging.getLogger("taskpipes")


class TickAge(PeriodiqMiddleware):
    """Drop only a scheduler's *first* delivery that is older than its tick's period.

    periodiq drops anything 30 s past its tick, retries included, so a failed periodic run
    would never be retried. A retry, a redelivery and an explicit run are never dropped;
    the catch-up pass turns a dropped tick into a run or a visible skip.
    """

    actor_options = {"periodic", "schedule"}

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        actor = broker.get_actor(message.actor_name)
        schedule: Schedule | None = actor.options.get("schedule")
        scheduled_at = message.options.get("scheduled_at")
        if schedule is None or scheduled_at is None or message.options.get("retries", 0):
            return
        if redelivered(message):
            return
        age = clock.now() - datetime.fromisoformat(str(scheduled_at))
        if age > schedule.period:
            logger.warning(
                "dropping %s tick %s: %s old, past one period", actor.actor_name, scheduled_at, age
            )
            raise SkipMessage()


class CrashGuard(Middleware):
    """Dead-letter a message whose processing keeps killing its worker.

    RabbitMQ redelivers a message whose worker died without counting a retry, so an OOM
    message would loop forever. RabbitMQ also marks each redelivery, so a first delivery
    costs nothing here: only a redelivered attempt is counted in the database, before it
    starts, and forgotten when it ends. The unseen first delivery is taken to have crashed
    (a worker stopped with the message still prefetched counts one crash too many, at
    most once); a count reaching `max_crashes` means every attempt died.
    """

    def __init__(self, max_crashes: int) -> None:
        self.max_crashes = max_crashes

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if not redelivered(message):
            return
        crashes = retrying(lambda: self._count(message))
        if crashes >= self.max_crashes:
            self._bury(message, crashes)

    @staticmethod
    def _count(message: MessageProxy) -> int:
        """Count this redelivery; returns the attempts of this message seen dying so far."""
        retries = message.options.get("retries", 0)
        with begin() as session:
            upsert(
                session,
                MessageDelivery.__table__,
                [
                    {
                        "message_id": message.message_id,
                        "retries": retries,
                        "actor": message.actor_name,
                        "deliveries": 0,
                        "first_delivered_at": clock.now(),
                    }
                ],
                key=("message_id", "retries"),
                update=(),
            )
            return session.execute(
                update(MessageDelivery)
                .where(MessageDelivery.message_id == message.message_id)
                .where(MessageDelivery.retries == retries)
                .values(deliveries=MessageDelivery.deliveries + 1)
                .returning(MessageDelivery.deliveries)
            ).scalar_one()

    def _bury(self, message: MessageProxy, crashes: int) -> None:
        reason = f"{message.actor_name} killed its worker {crashes} times; moved to dead letters"
        logger.error("message %s: %s", message.message_id, reason)
        run_id = message.options.get(runs.RUN_OPTION)
        if run_id is None:  # a tick message, which may have claimed a run and worked on it
            with begin() as session:
                run_id = runs.run_of_message(session, message.message_id)
        if run_id is not None:
            complete_run(int(run_id), runs.DEAD, reason)
        self._forget(message)
        message.fail()
        raise SkipMessage()

    def after_process_message(self, broker, message, *, result=None, exception=None):  # type: ignore[no-untyped-def]
        self._forget(message)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._forget(message)

    @staticmethod
    def _forget(message: MessageProxy) -> None:
        # Only a redelivery wrote a count. After-hooks run in reverse order, before Retries
        # counts this attempt.
        if not redelivered(message):
            return
        retries = message.options.get("retries", 0)
        try:
            with begin() as session:
                session.execute(
                    delete(MessageDelivery)
                    .where(MessageDelivery.message_id == message.message_id)
                    .where(MessageDelivery.retries == retries)
                )
        except SQLAlchemyError as exc:
            # A leftover row only matters if this very attempt later crashes max times.
            logger.warning(
                "could not clear delivery count of %s: %s", message.message_id, type(exc).__name__
            )


def redelivered(message: MessageProxy) -> bool:
    """RabbitMQ's mark on a message it delivers again (its consumer died or disconnected);
    dramatiq's RabbitMQ message proxy carries it, other brokers' messages never do."""
    return bool(getattr(message, "redelivered", False))


class SchedulerProbe(Middleware):
    """Notice that this process is a periodiq scheduler, and give it a /metrics endpoint.

    periodiq emits no start-up signal; the first tick it sends (a message with
    `scheduled_at` and no retries) is how the scheduler process makes itself known.
    """

    def after_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None
    ) -> None:
        if not rabbit.from_scheduler(message):
            return
        settings = get_settings()
        metrics.serve_metrics(settings.metrics_host, settings.metrics_port)
        metrics.tick_scheduled(message.actor_name)


class PoolSize(Middleware):
    """Size the database pool to the worker's threads as it boots (database.size_pool)."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        size_pool(worker.worker_threads)


class MetricsFiles(Middleware):
    """Remove the multiprocess metric files a previous run left, as each worker boots."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        directory = get_settings().metrics_dir
        if directory:
            metrics.wipe_stale_files(directory)
