"""The `taskpipes` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import dramatiq
import pika.exceptions
from sqlalchemy.exc import SQLAlchemyError

from taskpipes.cli import arguments, run_list
from taskpipes.cli import generate as generate_cli
from taskpipes.cli import operator as controls_cli
from taskpipes.cli import retry as retry_cli
from taskpipes.cli.discovery import AppNotFound, application, declared_registry
from taskpipes.cli.exits import EXIT_FAILED, EXIT_USAGE
from taskpipes.declare import clock
from taskpipes.declare.application import Application, resolve
from taskpipes.declare.settings import ConfigError
from taskpipes.store.database import describe_error
from taskpipes.store.runs import SUCCEEDED

if TYPE_CHECKING:
    from taskpipes.runtime.runner import Outcome

T = TypeVar("T")
# How long `taskpipes run` waits for a run by default.
DEFAULT_TIMEOUT_S = 600.0


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line naming the problem (argparse prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def add_app_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app", help="the module that declares the pipelines (default: TASKPIPES_APP, or actors)"
    )


def build_parser(app: Application) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="taskpipes", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    add_app_option(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade", "check", "revision"])
    db.add_argument("-m", "--message", help="revision: what the new migration does")

    run = sub.add_parser("run", help="run one pipeline tick end to end and wait for it")
    run.add_argument("pipeline")
    run.add_argument("--at", type=arguments.tick, help="the logical tick, ISO 8601 (default: now)")
    run.add_argument(
        "--timeout",
        type=arguments.seconds,
        help="seconds to wait (default 600; stargazers: until done)",
    )
    if app.run_options:
        resolve(app.run_options).add_options(run)

    backfill = sub.add_parser(
        "backfill", help="run every tick in a range (pipelines that compute the past)"
    )
    backfill.add_argument("pipeline")
    backfill.add_argument(
        "--from", dest="start", type=arguments.tick, required=True, help="first tick, ISO 8601"
    )
    backfill.add_argument(
        "--to", dest="end", type=arguments.tick, required=True, help="last tick, ISO 8601"
    )
    backfill.add_argument(
        "--timeout", type=arguments.seconds, default=3600.0, help="seconds to wait (default 3600)"
    )

    serve = sub.add_parser("serve", help="serve the read API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=arguments.port, default=8000)
    serve.add_argument(
        "--metrics-host", help="with --metrics-port: the address of /metrics (default: --host)"
    )
    serve.add_argument(
        "--metrics-port",
        type=arguments.port,
        help="serve /metrics on this port instead of on the API",
    )

    add_dlq_parser(sub)
    rabbit = sub.add_parser("rabbit", help="RabbitMQ maintenance (needs BROKER_URL)")
    rabbit_actions = rabbit.add_subparsers(dest="action", required=True, metavar="{migrate-queues}")
    rabbit_actions.add_parser(
        "migrate-queues", help="turn every classic queue (Q, Q.DQ, Q.XQ) into a quorum queue"
    )
    controls_cli.add_parsers(sub)
    retry_cli.add_parser(sub)
    status = sub.add_parser("status", help="freshness, failures, runs in progress, queue depths")
    status.add_argument("--json", action="store_true", help="print JSON")
    generate_cli.add_parser(sub)
    run_list.add_parser(sub)
    for reference in app.commands:
        resolve(reference)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; an error anyone can name (a setting, the database, the broker) is
    one line on stderr and an exit code, not a traceback."""
    try:
        return run_command(argv)
    except AppNotFound as exc:
        print(f"taskpipes: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"taskpipes: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader left (`| head`): not worth a traceback. Point stdout at /dev/null so
        # that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except SQLAlchemyError as exc:
        print(f"taskpipes: database error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_FAILED
    # pika lets a failed name lookup through unwrapped (the database and HTTP clients wrap
    # theirs).
    except (
        dramatiq.errors.BrokerConnectionError,
        pika.exceptions.AMQPError,
        socket.gaierror,
    ) as exc:
        print(f"taskpipes: broker error: {broker_problem(exc)}", file=sys.stderr)
        return EXIT_FAILED


def run_command(argv: Sequence[str] | None) -> int:
    # The application comes first: its commands and options are part of the parser.
    chosen = argparse.ArgumentParser(add_help=False)
    add_app_option(chosen)
    app = application(chosen.parse_known_args(argv)[0].app)
    args = build_parser(app).parse_args(argv)
    args.application = app
    configure_logging(verbose=args.verbose)
    handler = getattr(args, "handler", None) or COMMANDS[args.command]
    return int(handler(args))


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if verbose:
        for log_handler in logging.getLogger().handlers:
            log_handler.addFilter(OneTracebackPerError())
    else:
        # pika logs every failed connection attempt, and in-process worker threads every
        # failed attempt, each with a traceback: the summary and the error lines below say
        # what went wrong, and -v shows the rest.
        for noisy in ("pika", "dramatiq"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)


class OneTracebackPerError(logging.Filter):
    """-v shows each distinct error's traceback once: a stage failing the same way on
    every attempt (and Dramatiq's worker logs each one) keeps its line, not its traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            error = (type(exc).__name__, str(exc))
            if error in self.seen:
                record.exc_info, record.exc_text = None, None
            self.seen.add(error)
        return True


def broker_problem(exc: Exception) -> str:
    """Where the broker was looked for and the failure's class: no password, no pika dump."""
    from taskpipes.declare.settings import get_settings
    from taskpipes.rabbitmq import queues as rabbit

    url = get_settings().broker_url or ""
    cause: BaseException = exc
    while True:  # pika wraps the socket's own error twice, the second time as .exception
        inner = cause.args[0] if cause.args else getattr(cause, "exception", None)
        if not isinstance(inner, BaseException):
            break
        cause = inner
    detail = str(cause).strip()
    for node in url.split(";"):
        if password := urlsplit(node.strip()).password:
            detail = detail.replace(password, "***")
    where = f"cannot reach RabbitMQ at {rabbit.broker_hosts(url)}"
    return f"{where}: {type(cause).__name__}" + (f": {detail}" if detail else "")


def cmd_db(args: argparse.Namespace) -> int:
    from alembic.util import CommandError

    from taskpipes.store.migrate import NoMigrations

    app: Application = args.application
    try:
        return db_action(args.action, args.message, app)
    except NoMigrations as exc:
        print(f"taskpipes db {args.action}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:  # e.g. a revision asked of a database behind its migrations
        print(f"taskpipes db {args.action}: {exc}", file=sys.stderr)
        return EXIT_FAILED


def db_action(action: str, message: str | None, app: Application) -> int:
    from taskpipes.declare.settings import get_settings
    from taskpipes.store import migrate
    from taskpipes.store import new_histories as history

    url = get_settings().database_url
    location, metadata = migrate.application_migrations(app)
    if action == "revision" and not message:
        print("taskpipes db revision: -m MESSAGE is required", file=sys.stderr)
        return EXIT_USAGE
    if location is not None and history.ensure_history(location):
        print(f"new migration history in {location}")
    if action == "upgrade":
        migrate.upgrade(url, location, metadata)
        print("database schema is up to date")
    elif action == "revision":
        print(f"wrote {migrate.revision(url, location, metadata, message or '')}")
    else:
        drift = migrate.check(url, location, metadata)
        print(drift.summary())
        return 0 if drift.matches else EXIT_FAILED
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from taskpipes.cli.attempt_lines import FailedAttempts
    from taskpipes.declare.settings import get_settings
    from taskpipes.runtime.runner import run_tick

    try:
        entry = declared_registry().get(args.pipeline)
    except KeyError as exc:
        print(f"taskpipes run: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    extra = resolve(args.application.run_options) if args.application.run_options else None
    if extra and args.pipeline != extra.PIPELINE and extra.given(args):
        flags = ", ".join(extra.given(args))
        print(f"taskpipes run: {flags} only apply to {extra.PIPELINE}", file=sys.stderr)
        return EXIT_USAGE
    warn_if_no_workers(entry.queue_name)
    outcome: Outcome | int
    with asking("run", entry.name):
        if extra and args.pipeline == extra.PIPELINE:
            outcome = extra.run(entry, args)
        else:
            timeout = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
            # In-process workers print their own line per failed attempt; remote ones cannot.
            echo = None if get_settings().in_process else FailedAttempts(entry.name)
            outcome = run_tick(entry, args.at or clock.now(), timeout, on_poll=echo)
    if isinstance(outcome, int):
        return outcome  # enqueued only (e.g. --no-wait)
    print(format_outcome(outcome))
    return 0 if outcome.status == SUCCEEDED else EXIT_FAILED


def cmd_backfill(args: argparse.Namespace) -> int:
    from taskpipes.runtime.runner import BackfillRefused, backfill

    if args.end < args.start:
        print("taskpipes backfill: --to is before --from", file=sys.stderr)
        return EXIT_USAGE
    try:
        entry = declared_registry().get(args.pipeline)
        if entry.computes_past:  # else backfill refuses, and workers do not matter
            warn_if_no_workers(entry.queue_name)
        with asking("backfill", entry.name, batch=True):
            outcomes = backfill(entry, args.start, args.end, args.timeout)
    except (KeyError, BackfillRefused) as exc:
        print(f"taskpipes backfill: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    counts = Counter(o.status for o in outcomes)
    print(
        f"{args.pipeline}: {len(outcomes)} ticks: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    )
    for outcome in outcomes:
        if outcome.status != SUCCEEDED:
            print(format_outcome(outcome))
    return 0 if counts[SUCCEEDED] == len(outcomes) else EXIT_FAILED


def asking(command: str, pipeline: str, *, batch: bool = False) -> AbstractContextManager[None]:
    """The command's span, when tracing is on: the runs it asks for are traced from here
    (taskpipes.observe.tracing)."""
    from taskpipes.observe.tracing import asking as traced
    from taskpipes.runtime.current import current_broker

    return traced(current_broker(), command, pipeline, batch=batch)


def warn_if_no_workers(queue: str) -> None:
    """Say so before waiting when nothing consumes the queue: the wait would be for nothing."""
    from taskpipes.declare.settings import get_settings
    from taskpipes.rabbitmq import queues as rabbit

    broker_url = get_settings().broker_url
    if broker_url and rabbit.consumer_count(broker_url, queue) == 0:
        print(
            f"taskpipes: no worker consumes queue {queue!r} now: start `dramatiq actors` "
            "(the message waits in RabbitMQ until one does)",
            file=sys.stderr,
        )


def format_outcome(outcome: object) -> str:
    from taskpipes.runtime.runner import Outcome
    from taskpipes.store.runs import FINISHED

    assert isinstance(outcome, Outcome)
    note = " (already done: nothing changed)" if outcome.already_done else ""
    lines = [f"{outcome.pipeline} tick {outcome.tick.isoformat()}: {outcome.status}{note}"]
    for stage, status, seconds, rows in outcome.stages:
        took = "-" if seconds is None else f"{seconds:.3f}s"
        lines.append(f"  {stage:<10} {status:<10} {took:>9}  {rows} rows")
    if outcome.error and outcome.status != SUCCEEDED:
        lines.append(f"  error: {outcome.error}")
    if outcome.status not in FINISHED:
        lines.append("  not finished when the wait ended: the workers go on (`taskpipes status`)")
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from taskpipes.declare.settings import get_settings
    from taskpipes.observe import metrics

    directory = get_settings().metrics_dir
    if directory:
        metrics.wipe_stale_files(directory)
    apart = args.metrics_port is not None
    if args.metrics_host and not apart:
        print("taskpipes serve: --metrics-host needs --metrics-port", file=sys.stderr)
        return EXIT_USAGE
    try:
        # Bound here, not by uvicorn: a taken port is one line and exit 1, not uvicorn's 3.
        api = named_address(listening_socket, args.host, args.port)
        if apart:
            named_address(metrics.serve_metrics, args.metrics_host or args.host, args.metrics_port)
    except OSError as exc:
        print(f"taskpipes serve: cannot listen: {exc}", file=sys.stderr)
        return EXIT_FAILED
    create_app = web_factory(args.application.web)
    config = uvicorn.Config(create_app(metrics_route=not apart), log_level="warning")
    uvicorn.Server(config).run(sockets=[api])
    return 0


def web_factory(web: str | None) -> Callable[..., Any]:
    """The application's app factory ("module:factory"), or the kit's router alone."""
    if web is None:
        from taskpipes.http import create_app

        return create_app
    return resolve(web)  # type: ignore[no-any-return]


def listening_socket(host: str, port: int) -> socket.socket:
    # The protocol must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets
    # that say they are TCP, and without it Nagle's algorithm meets the client's delayed
    # ACK and every answer waits about 40 ms.
    family, kind, protocol, _, _ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def named_address(listen: Callable[[str, int], T], host: str, port: int) -> T:
    """`listen(host, port)`; an OSError says which address could not be listened on."""
    try:
        return listen(host, port)
    except OSError as exc:
        raise OSError(f"{host}:{port}: {exc.strerror or exc}") from None


# Dead letters exist only in RabbitMQ: without it `taskpipes dlq` has nothing to read.
NO_BROKER = (
    "taskpipes dlq: BROKER_URL is not set: dead letters live in RabbitMQ (amqp://...); "
    "the in-process broker keeps none"
)


def add_dlq_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dlq = sub.add_parser("dlq", help="dead letters in RabbitMQ's Q.XQ queues (needs BROKER_URL)")
    actions = dlq.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="show dead messages without removing them")
    listing.add_argument("--json", action="store_true", help="print JSON")
    for name, what in (("replay", "send again with retries reset"), ("purge", "delete for good")):
        action = actions.add_parser(name, help=f"dead messages: {what}")
        which = action.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", dest="message_id", help="one message, by its Dramatiq id")
        which.add_argument("--all", action="store_true", help="every dead message")


def cmd_dlq(args: argparse.Namespace) -> int:
    from taskpipes.cli import dlq
    from taskpipes.declare.settings import get_settings
    from taskpipes.rabbitmq.deadletters import letter_json, letter_line, letters_table

    broker_url = get_settings().broker_url
    if not broker_url:
        print(NO_BROKER, file=sys.stderr)
        return EXIT_USAGE
    declared_registry()  # the application's actors declare their queues
    queues = dlq.declared_queues()
    if args.action == "list":
        letters = dlq.list_dead(broker_url, queues)
        as_json = json.dumps([letter_json(letter) for letter in letters], indent=2)
        print(as_json if args.json else letters_table(letters))
        return 0
    action, verb = (dlq.replay, "replayed") if args.action == "replay" else (dlq.purge, "purged")
    done = dlq.take_dead(broker_url, queues, args.message_id, action)
    for letter in done:
        print(letter_line(verb, letter))
    if args.message_id and not done:
        print(f"taskpipes dlq {args.action}: no dead message {args.message_id}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{verb} {len(done)} dead message(s)")
    return 0


def cmd_rabbit(args: argparse.Namespace) -> int:
    from taskpipes.cli import dlq
    from taskpipes.declare.settings import get_settings
    from taskpipes.rabbitmq.quorum import MigrationError, migrate

    settings = get_settings()
    if not settings.broker_url:
        print(
            "taskpipes rabbit: BROKER_URL is not set: there is no queue to migrate", file=sys.stderr
        )
        return EXIT_USAGE
    declared_registry()  # the application's actors declare their queues
    try:
        for done in migrate(settings.broker_url, dlq.declared_queues(), settings.max_crashes):
            print(done.line())
    except MigrationError as exc:
        print(f"taskpipes rabbit migrate-queues: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if settings.queue_type != "quorum":
        print("every queue is quorum now: run the workers with TASKPIPES_QUEUE_TYPE=quorum")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from taskpipes.declare.settings import get_settings
    from taskpipes.observe.report import report_json, report_text
    from taskpipes.observe.status import gather

    declared_registry()
    now = clock.now()
    statuses = gather(now)
    print(json.dumps(report_json(statuses, now), indent=2) if args.json else report_text(statuses))
    unknown = [s.depths_note for s in statuses if s.depths is None]
    if get_settings().broker_url and unknown:
        # The report stands (the database answered), but a broker that cannot be read is a
        # failure to report on, not a state of the queues.
        print(f"taskpipes status: queue depths unknown: {unknown[0]}", file=sys.stderr)
        return EXIT_FAILED
    return 0


COMMANDS = {
    "db": cmd_db,
    "run": cmd_run,
    "serve": cmd_serve,
    "backfill": cmd_backfill,
    "dlq": cmd_dlq,
    "status": cmd_status,
    "rabbit": cmd_rabbit,
    "retry": lambda args: retry_cli.cmd_retry(args, format_outcome),
    **controls_cli.COMMANDS,
}


if __name__ == "__main__":
    sys.exit(main())
