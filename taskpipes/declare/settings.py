"""Settings: the one place that reads the environment.

Everything else asks `get_settings()`; tests and subprocesses change behaviour by changing
the environment before the process starts, never by poking module globals. A host
application may hand in its own Settings instead (`taskpipes.configure`). Either way they
are kept in the process's configuration (`taskpipes.declare.configuration`), read once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from taskpipes.declare.configuration import configuration

# The default database is a file next to where taskpipes runs, so `make run` needs nothing.
DEFAULT_DATABASE_URL = "sqlite:///taskpipes.db"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
# The application module when TASKPIPES_APP names none: the flagship's.
DEFAULT_APP = "actors"
# Prefix of the per-pipeline schedule overrides, e.g. TASKPIPES_SCHEDULE_GITHUB_TOP.
SCHEDULE_PREFIX = "TASKPIPES_SCHEDULE_"
# RabbitMQ queue types. Classic is the default: a queue that exists cannot change type, so a
# deployment moves to quorum on purpose, with `taskpipes rabbit migrate-queues`.
QUEUE_TYPES = ("classic", "quorum")
# The ranking's size: GitHub search serves at most 1,000 results of a query.
DEFAULT_TOP_N, MAX_TOP_N = 100, 1000


class ConfigError(ValueError):
    """A setting from the environment is unusable; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str | None = None
    github_api_url: str = DEFAULT_GITHUB_API_URL
    github_token: str | None = field(default=None, repr=False)
    github_timeout: float = 10.0
    schedule_overrides: Mapping[str, str] = field(default_factory=dict)
    raw_retention_days: int = 30
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
    # How many repositories github_top ranks (TASKPIPES_TOP_N).
    top_n: int = DEFAULT_TOP_N
    # github_top asks again this long after a suspect answer, doubling each time; tests
    # shrink it so that a refetch costs no real seconds.
    suspect_refetch_s: float = 5.0
    # The module that declares the pipelines, which every `taskpipes` command imports.
    app: str = DEFAULT_APP

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


def _top_n(env: Mapping[str, str]) -> int:
    raw = env.get("TASKPIPES_TOP_N")
    if raw is None or raw == "":
        return DEFAULT_TOP_N
    if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_TOP_N:
        raise ConfigError(
            f"TASKPIPES_TOP_N must be a whole number from 1 to {MAX_TOP_N} (GitHub search "
            f"serves at most {MAX_TOP_N:,} results), got {raw!r}"
        )
    return int(raw)


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
        github_api_url=(env.get("GITHUB_API_URL") or DEFAULT_GITHUB_API_URL).rstrip("/"),
        github_token=env.get("GITHUB_TOKEN") or None,
        github_timeout=_positive_number(env, "TASKPIPES_GITHUB_TIMEOUT", 10.0, float),
        schedule_overrides=overrides,
        raw_retention_days=int(_positive_number(env, "TASKPIPES_RAW_RETENTION_DAYS", 30, int)),
        max_crashes=int(_positive_number(env, "TASKPIPES_MAX_CRASHES", 3, int)),
        metrics_port=int(_positive_number(env, "TASKPIPES_METRICS_PORT", 9192, int)),
        retry_min_backoff_ms=int(
            _positive_number(env, "TASKPIPES_RETRY_MIN_BACKOFF_MS", 2000, int)
        ),
        db_lock_timeout_s=_positive_number(env, "TASKPIPES_DB_LOCK_TIMEOUT_S", 100.0, float),
        metrics_host=env.get("TASKPIPES_METRICS_HOST") or "0.0.0.0",
        metrics_dir=_check_metrics_dir(env),
        queue_type=_choice(env, "TASKPIPES_QUEUE_TYPE", QUEUE_TYPES),
        top_n=_top_n(env),
        suspect_refetch_s=_positive_number(env, "TASKPIPES_SUSPECT_REFETCH_S", 5.0, float),
        app=env.get("TASKPIPES_APP") or DEFAULT_APP,
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
