"""Settings: the one place that reads the environment.

Everything else asks `get_settings()` (the kit's settings) or `variable(name)` (the text of
an application's own setting, taskpipes.Setting); tests and subprocesses change behaviour by
changing the environment before the process starts, never by poking module globals. A host
application may hand in its own Settings instead (`taskpipes.configure`), its settings'
values with them. The kit's settings are kept in the process's configuration
(`taskpipes.declare.configuration`), read once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from taskpipes.declare.configuration import configuration

# The default database is a file next to where taskpipes runs, so `make run` needs nothing.
DEFAULT_DATABASE_URL = "sqlite:///taskpipes.db"
# The application module when TASKPIPES_APP names none: the flagship's.
DEFAULT_APP = "actors"
# Prefix of the per-pipeline schedule overrides, e.g. TASKPIPES_SCHEDULE_GITHUB_TOP.
SCHEDULE_PREFIX = "TASKPIPES_SCHEDULE_"
# RabbitMQ queue types. Classic is the default: a queue that exists cannot change type, so a
# deployment moves to quorum on purpose, with `taskpipes rabbit migrate-queues`.
QUEUE_TYPES = ("classic", "quorum")
# OTEL_EXPORTER_OTLP_PROTOCOL values and the exporter (its entry point's name) each picks;
# the specification's default is http/protobuf.
OTLP_PROTOCOLS = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}


class ConfigError(ValueError):
    """A setting from the environment is unusable; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str | None = None
    schedule_overrides: Mapping[str, str] = field(default_factory=dict)
    max_crashes: int = 3
    metrics_port: int = 9192
    # The first retry's backoff; tests shrink it so a failing message dead-letters quickly.
    retry_min_backoff_ms: int = 2000
    metrics_host: str = "0.0.0.0"
    # How long a PostgreSQL statement may wait for a lock (db.session says why).
    db_lock_timeout_s: float = 100.0
    # prometheus_client reads this variable itself; we read it to find and wipe the files.
    metrics_dir: str | None = None
    queue_type: str = "classic"
    # The module that declares the pipelines, which every `taskpipes` command imports.
    app: str = DEFAULT_APP
    # The OpenTelemetry span exporters (entry point names) when the OTEL_* variables turn
    # tracing on; empty when they do not (docs/how-to/tracing.md).
    trace_exporters: tuple[str, ...] = ()
    # The text of the application's own settings (taskpipes.Setting) by variable name, for
    # Settings a host hands in: loaded from the environment, they are read from it instead.
    app_values: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def tracing(self) -> bool:
        return bool(self.trace_exporters)

    @property
    def in_process(self) -> bool:
        """True when no broker is configured: workers run inside the taskpipes process."""
        return not self.broker_url


def _positive_number(env: Mapping[str, str], name: str, default: float, kind: type) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {expected}, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _check_broker_url(url: str | None) -> str | None:
    # The nodes of one cluster are listed `;`-separated, as Dramatiq accepts them.
    for part in url.split(";") if url else []:
        if not part.strip().startswith(("amqp://", "amqps://")):
            raise ConfigError(
                "BROKER_URL must be amqp:// or amqps:// URLs separated by ';', "
                f"got scheme {part.strip().split(':')[0]!r}"
            )
        _check_parts("BROKER_URL", part.strip())
    return url or None


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name) or choices[0]
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _check_parts(name: str, url: str) -> None:
    """A URL that cannot be taken apart, named by its broken part: the URL itself is never
    quoted, since it holds a password."""
    try:
        urlsplit(url).port  # noqa: B018 (parsing the port is the check)
    except ValueError as exc:
        problem = (
            "an unclosed '[' in its host" if "IPv6" in str(exc) else "a port that is not 0-65535"
        )
        raise ConfigError(f"{name} is malformed: {problem}") from None


def _check_database_url(url: str) -> str:
    if not url.startswith(("sqlite:///", "postgresql")):
        raise ConfigError(
            "DATABASE_URL must be sqlite:///FILE or postgresql+psycopg://..., "
            f"got scheme {url.split(':')[0]!r}"
        )
    if url.startswith("sqlite") and url.rstrip("/") in ("sqlite:", "sqlite:///:memory:"):
        raise ConfigError("DATABASE_URL must name a SQLite file: workers run in other threads")
    _check_parts("DATABASE_URL", url)
    return url


def _check_metrics_dir(env: Mapping[str, str]) -> str | None:
    """PROMETHEUS_MULTIPROC_DIR, which must be dramatiq_prom_db's directory when that is set:
    prometheus_client picks in-memory metrics at import unless the variable is already set,
    so the worker children would keep every taskpipes metric to themselves and dramatiq's
    exporter, reading dramatiq_prom_db, would show none of them."""
    directory = env.get("PROMETHEUS_MULTIPROC_DIR") or None
    prom_db = env.get("dramatiq_prom_db") or None
    if prom_db and directory != prom_db:
        raise ConfigError(
            f"dramatiq_prom_db is {prom_db!r} but PROMETHEUS_MULTIPROC_DIR is "
            f"{'unset' if directory is None else repr(directory)}: set both to the same "
            "directory, or the workers' taskpipes metrics never reach dramatiq's exporter"
        )
    return directory


def _trace_exporters(env: Mapping[str, str]) -> tuple[str, ...]:
    """The span exporters the standard OTEL_* variables ask for: none (tracing off) unless
    OTEL_TRACES_EXPORTER names some or an OTLP endpoint is set. The SDK itself reads the
    rest (endpoint, headers, service name, sampler), as prometheus_client reads its own."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    named = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not named and not endpoint:
        return ()
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol not in OTLP_PROTOCOLS:
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL must be one of {', '.join(OTLP_PROTOCOLS)}, "
            f"got {protocol!r}"
        )
    otlp = OTLP_PROTOCOLS[protocol]
    return tuple(otlp if n == "otlp" else n for n in named or ["otlp"] if n != "none")


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build settings from an environment mapping, failing with the variable's name."""
    overrides = {
        key[len(SCHEDULE_PREFIX) :].lower(): value
        for key, value in env.items()
        if key.startswith(SCHEDULE_PREFIX)
    }
    return Settings(
        database_url=_check_database_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
        broker_url=_check_broker_url(env.get("BROKER_URL")),
        schedule_overrides=overrides,
        max_crashes=int(_positive_number(env, "TASKPIPES_MAX_CRASHES", 3, int)),
        metrics_port=int(_positive_number(env, "TASKPIPES_METRICS_PORT", 9192, int)),
        retry_min_backoff_ms=int(
            _positive_number(env, "TASKPIPES_RETRY_MIN_BACKOFF_MS", 2000, int)
        ),
        db_lock_timeout_s=_positive_number(env, "TASKPIPES_DB_LOCK_TIMEOUT_S", 100.0, float),
        metrics_host=env.get("TASKPIPES_METRICS_HOST") or "0.0.0.0",
        metrics_dir=_check_metrics_dir(env),
        queue_type=_choice(env, "TASKPIPES_QUEUE_TYPE", QUEUE_TYPES),
        app=env.get("TASKPIPES_APP") or DEFAULT_APP,
        trace_exporters=_trace_exporters(env),
    )


def check_override_names(settings: Settings, pipelines: Iterable[str]) -> None:
    """A schedule override for a pipeline that does not exist is a typo that changes nothing:
    refused, so that it does not pass for the override it was meant to be."""
    known = sorted(pipelines)
    unknown = sorted(set(settings.schedule_overrides) - set(known))
    if unknown:
        raise ConfigError(
            f"{SCHEDULE_PREFIX}{unknown[0].upper()} names no pipeline; known: "
            + ", ".join(f"{SCHEDULE_PREFIX}{name.upper()}" for name in known)
        )


def use_settings(settings: Settings | None) -> None:
    """Use `settings` instead of the environment's (None: the environment's again)."""
    configuration.give(settings=settings)


def get_settings() -> Settings:
    """The settings a host application handed in, else the environment's, read once."""
    return configuration.derived("settings", _given_or_environment)


def _given_or_environment() -> Settings:
    given: Settings | None = configuration.given("settings")
    return given if given is not None else load_settings(os.environ)


def variable(name: str) -> str | None:
    """The text of an application setting's variable: from the Settings a host handed in
    (their `app_values`), else from the environment. Read afresh on each call: it is one
    dictionary lookup, and nothing has to be reset when a test changes the environment."""
    given: Settings | None = configuration.given("settings")
    if given is not None:
        return given.app_values.get(name)
    return os.environ.get(name)
