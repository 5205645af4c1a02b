"""Settings: a broken value of any number setting stops start-up, naming the variable,
whether the kit reads it (taskpipes.Settings) or the GitHub application (pipelines.config)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.config import GITHUB_TIMEOUT, RAW_RETENTION_DAYS
from taskpipes.declare.settings import ConfigError, load_settings
from tests.clirun import configuration_error
from tests.processes import service_env, worker_args

ROOT = Path(__file__).resolve().parents[2]


def kit(attribute: str) -> Callable[[str, str], object]:
    """Reads one variable as the kit's settings do."""
    return lambda name, text: getattr(load_settings({name: text}), attribute)


# The number settings, how each is read, and a good value to read back.
NUMBER_SETTINGS = [
    ("TASKPIPES_RAW_RETENTION_DAYS", lambda _, text: RAW_RETENTION_DAYS.load(text), "7", 7),
    ("TASKPIPES_MAX_CRASHES", kit("max_crashes"), "5", 5),
    ("TASKPIPES_METRICS_PORT", kit("metrics_port"), "9300", 9300),
    ("TASKPIPES_RETRY_MIN_BACKOFF_MS", kit("retry_min_backoff_ms"), "250", 250),
    ("TASKPIPES_GITHUB_TIMEOUT", lambda _, text: GITHUB_TIMEOUT.load(text), "2.5", 2.5),
]
WHOLE = [row for row in NUMBER_SETTINGS if row[0] != "TASKPIPES_GITHUB_TIMEOUT"]


@pytest.mark.parametrize(("name", "read", "good", "value"), NUMBER_SETTINGS)
def test_a_good_value_is_read(name: str, read: Callable, good: str, value: float) -> None:
    assert read(name, good) == value


# (variable, how it is read, broken value, what the error says it must be)
BROKEN = [
    (name, read, broken, "positive") for name, read, *_ in NUMBER_SETTINGS for broken in ("0", "-3")
] + [
    (name, read, broken, "a whole number")
    for name, read, *_ in WHOLE
    for broken in ("ten", "1.5", "3 days")
]


@pytest.mark.parametrize(("name", "read", "broken", "must_be"), BROKEN)
def test_a_broken_value_is_refused_by_name(
    name: str, read: Callable, broken: str, must_be: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        read(name, broken)

    assert str(refused.value) == f"{name} must be {must_be}, got {broken!r}"


def test_a_timeout_that_is_no_number_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"^TASKPIPES_GITHUB_TIMEOUT must be a number, got 'x'$"):
        GITHUB_TIMEOUT.load("x")


def test_the_command_stops_with_one_line_naming_the_variable(tmp_path) -> None:
    assert configuration_error(tmp_path, TASKPIPES_MAX_CRASHES="three") == (
        "taskpipes: configuration error: TASKPIPES_MAX_CRASHES must be a whole number, got 'three'"
    )


def test_the_command_stops_on_a_bad_application_setting(tmp_path) -> None:
    # `taskpipes status` reads no GitHub setting: the start checks them all the same
    assert configuration_error(tmp_path, TASKPIPES_GITHUB_TIMEOUT="0") == (
        "taskpipes: configuration error: TASKPIPES_GITHUB_TIMEOUT must be positive, got '0'"
    )


def test_a_worker_stops_at_boot_on_a_bad_application_setting(tmp_path: Path) -> None:
    # Given a bad GitHub setting that no message has read yet
    env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}")
    env["TASKPIPES_TOP_N"] = "0"

    # When the workers start
    worker = subprocess.run(
        worker_args(processes=1, threads=1),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    # Then they stop at boot, the error naming the variable
    assert worker.returncode != 0
    assert (
        "ConfigError: TASKPIPES_TOP_N must be a whole number from 1 to 1000 (GitHub search "
        "serves at most 1,000 results), got '0'"
    ) in worker.stderr
