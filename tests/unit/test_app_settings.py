"""An application's own settings (taskpipes.Setting): parsed, checked, named in every error,
and a secret never shown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import taskpipes
from taskpipes import Setting, Settings
from taskpipes.declare.app_settings import check_all, positive
from taskpipes.declare.settings import ConfigError, use_settings

WORKERS = Setting("MYAPP_WORKERS", parse=int, default=4, check=positive, help="feed workers")
RATIO = Setting("MYAPP_RATIO", parse=float, default=0.5)
FEED_URL = Setting("MYAPP_FEED_URL", help="where the feed is")
API_KEY: Setting[str | None] = Setting("MYAPP_API_KEY", default=None, secret=True)
DRY_RUN = Setting("MYAPP_DRY_RUN", parse=bool, default=False)


@pytest.fixture
def host_settings() -> Iterator[None]:
    """Whatever a test hands to taskpipes.configure is dropped afterwards."""
    yield
    use_settings(None)


def test_unset_or_empty_is_the_default() -> None:
    assert WORKERS.load(None) == WORKERS.load("") == 4
    assert API_KEY.load(None) is None


@pytest.mark.parametrize(
    ("setting", "text", "value"),
    [
        (WORKERS, "12", 12),
        (WORKERS, " 3 ", 3),
        (RATIO, "0.25", 0.25),
        (FEED_URL, "https://example.org/feed", "https://example.org/feed"),
        (DRY_RUN, "yes", True),
        (DRY_RUN, "False", False),
        (DRY_RUN, "0", False),
    ],
)
def test_a_good_value_is_parsed(setting: Setting, text: str, value: object) -> None:
    assert setting.load(text) == value


@pytest.mark.parametrize(
    ("setting", "text", "error"),
    [
        (WORKERS, "four", "MYAPP_WORKERS must be a whole number, got 'four'"),
        (WORKERS, "1.5", "MYAPP_WORKERS must be a whole number, got '1.5'"),
        (WORKERS, "0", "MYAPP_WORKERS must be positive, got '0'"),
        (RATIO, "half", "MYAPP_RATIO must be a number, got 'half'"),
        (DRY_RUN, "maybe", "MYAPP_DRY_RUN must be true or false, got 'maybe'"),
        (FEED_URL, None, "MYAPP_FEED_URL must be set"),
    ],
)
def test_a_bad_value_is_refused_by_name(setting: Setting, text: str | None, error: str) -> None:
    with pytest.raises(ConfigError) as refused:
        setting.load(text)

    assert str(refused.value) == error


def test_a_custom_parser_names_what_it_wants() -> None:
    def port(text: str) -> int:
        value = int(text)
        if not 0 < value < 65536:
            raise ValueError(text)
        return value

    setting = Setting("MYAPP_PORT", parse=port, default=80, must_be="a port from 1 to 65535")

    with pytest.raises(ConfigError, match=r"^MYAPP_PORT must be a port from 1 to 65535, got '0'$"):
        setting.load("0")


def refuse_every_key(text: str) -> str:
    raise ValueError(text)


@given(st.text(min_size=1))
def test_a_secret_is_never_shown(text: str) -> None:
    # Given secrets whose parser, or whose check, refuses whatever text they get
    refused_by_parse = Setting("MYAPP_PIN", parse=refuse_every_key, secret=True, must_be="a PIN")
    refused_by_check = Setting("MYAPP_PIN", check=lambda _: "a PIN", secret=True)

    for secret in (refused_by_parse, refused_by_check):
        # Then the error names the variable, never the value, and chains no exception
        with pytest.raises(ConfigError) as refused:
            secret.load(text)
        assert str(refused.value) == "MYAPP_PIN must be a PIN (the value is secret: not shown)"
        shown_context = refused.value.__context__ and not refused.value.__suppress_context__
        assert refused.value.__cause__ is None and not shown_context


def test_a_secret_default_is_not_in_repr() -> None:
    secret = Setting("MYAPP_SALT", default="s3cr3t-default", secret=True)

    assert "s3cr3t" not in repr(secret)
    assert "MYAPP_SALT" in repr(secret)


def test_get_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAPP_WORKERS", "7")
    assert WORKERS.get() == 7

    monkeypatch.setenv("MYAPP_WORKERS", "-1")
    with pytest.raises(ConfigError, match="^MYAPP_WORKERS must be positive"):
        WORKERS.get()


def test_a_host_hands_the_values_in(monkeypatch: pytest.MonkeyPatch, host_settings: None) -> None:
    # Given an environment that says 7, and a host that configures taskpipes itself
    monkeypatch.setenv("MYAPP_WORKERS", "7")
    taskpipes.configure(Settings(app_values={"MYAPP_WORKERS": "2"}))

    # Then the host's values count, parsed and checked the same way; unset is the default
    assert WORKERS.get() == 2
    assert RATIO.get() == 0.5
    taskpipes.configure(Settings(app_values={"MYAPP_WORKERS": "0"}))
    with pytest.raises(ConfigError, match="^MYAPP_WORKERS must be positive"):
        WORKERS.get()


def test_the_start_check_names_the_first_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAPP_FEED_URL", "https://example.org/feed")
    monkeypatch.setenv("MYAPP_RATIO", "lots")

    with pytest.raises(ConfigError, match="^MYAPP_RATIO must be a number, got 'lots'$"):
        check_all((WORKERS, FEED_URL, RATIO))


def test_one_variable_declared_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    again = Setting("MYAPP_WORKERS", parse=int, default=8)

    with pytest.raises(ConfigError, match="^MYAPP_WORKERS is declared twice"):
        check_all((WORKERS, again))
