"""Settings: a broken value of any number setting stops start-up, naming the variable."""

from __future__ import annotations

import pytest

from taskpipes.declare.settings import ConfigError, load_settings
from tests.clirun import configuration_error

# The number settings, the attribute each fills, and a good value to read back.
NUMBER_SETTINGS = [
    ("TASKPIPES_RAW_RETENTION_DAYS", "raw_retention_days", "7", 7),
    ("TASKPIPES_MAX_CRASHES", "max_crashes", "5", 5),
    ("TASKPIPES_METRICS_PORT", "metrics_port", "9300", 9300),
    ("TASKPIPES_RETRY_MIN_BACKOFF_MS", "retry_min_backoff_ms", "250", 250),
    ("TASKPIPES_GITHUB_TIMEOUT", "github_timeout", "2.5", 2.5),
]
WHOLE = [row for row in NUMBER_SETTINGS if row[0] != "TASKPIPES_GITHUB_TIMEOUT"]


@pytest.mark.parametrize(("name", "attribute", "good", "value"), NUMBER_SETTINGS)
def test_a_good_value_is_read(name: str, attribute: str, good: str, value: float) -> None:
    assert getattr(load_settings({name: good}), attribute) == value


# (variable, broken value, what the error says it must be)
BROKEN = [(name, broken, "positive") for name, *_ in NUMBER_SETTINGS for broken in ("0", "-3")] + [
    (name, broken, "a whole number") for name, *_ in WHOLE for broken in ("ten", "1.5", "3 days")
]


@pytest.mark.parametrize(("name", "broken", "must_be"), BROKEN)
def test_a_broken_value_is_refused_by_name(name: str, broken: str, must_be: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({name: broken})

    assert str(refused.value) == f"{name} must be {must_be}, got {broken!r}"


def test_a_timeout_that_is_no_number_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"^TASKPIPES_GITHUB_TIMEOUT must be a number, got 'x'$"):
        load_settings({"TASKPIPES_GITHUB_TIMEOUT": "x"})


def test_the_command_stops_with_one_line_naming_the_variable(tmp_path) -> None:
    assert configuration_error(tmp_path, TASKPIPES_MAX_CRASHES="three") == (
        "taskpipes: configuration error: TASKPIPES_MAX_CRASHES must be a whole number, got 'three'"
    )
