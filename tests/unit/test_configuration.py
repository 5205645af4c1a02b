"""The process's configuration: derived values are built once, and dropped (closed) when
the configuration changes, so that nothing outlives the configuration it came from."""

from __future__ import annotations

from datetime import timedelta

import pytest

import pipelines.catalog  # noqa: F401  (declares github_top, whose cadence the pages use)
from taskpipes import testing
from taskpipes.declare.configuration import Configuration
from taskpipes.declare.settings import get_settings
from taskpipes.store.database import DEFAULT_POOL_SIZE, get_engine, session_factory, size_pool
from web.pages.pages import _github_top_cadence


def test_a_derived_value_is_built_once_until_the_configuration_changes() -> None:
    config, built, closed = Configuration(), [], []

    def build() -> int:
        built.append(len(built))
        return len(built)

    first = config.derived("n", build, closed.append)
    assert config.derived("n", build, closed.append) == first == 1

    config.give(part="a value")

    assert closed == [1]
    assert config.given("part") == "a value"
    assert config.derived("n", build, closed.append) == 2


def test_reset_forgets_the_given_parts_and_closes_what_was_built() -> None:
    config, closed = Configuration(), []
    config.give(settings="given")
    config.derived("engine", lambda: "engine", closed.append)

    config.reset()

    assert (config.given("settings"), closed) == (None, ["engine"])


def test_a_given_part_of_none_is_withdrawn() -> None:
    config = Configuration()
    config.give(engine="host's")

    config.give(engine=None)

    assert config.given("engine") is None


def test_one_reset_reads_every_setting_again_the_pages_cadence_included(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the settings and the pages' github_top cadence used once
    testing.reset()
    assert _github_top_cadence()[1] == timedelta(minutes=10)

    # When the environment changes and the test makes its one call
    monkeypatch.setenv("TASKPIPES_SCHEDULE_GITHUB_TOP", "*/5 * * * *")
    monkeypatch.setenv("TASKPIPES_MAX_CRASHES", "7")
    testing.reset()

    # Then every part follows the new environment
    try:
        assert get_settings().max_crashes == 7
        assert _github_top_cadence()[1] == timedelta(minutes=5)
    finally:
        monkeypatch.undo()
        testing.reset()


def test_a_worker_s_threads_size_the_pool_of_a_new_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an engine built for PostgreSQL (building one opens no connection)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    testing.reset()
    try:
        before = get_engine()
        assert before.pool.size() == DEFAULT_POOL_SIZE  # type: ignore[attr-defined]

        # When a worker of eight threads boots
        size_pool(8)

        # Then the kit's sessions use a new engine, a connection per thread
        assert get_engine() is not before
        assert get_engine().pool.size() == 8  # type: ignore[attr-defined]
        assert session_factory().kw["bind"] is get_engine()
    finally:
        monkeypatch.undo()
        testing.reset()
