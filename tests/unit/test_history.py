"""A new application's migration history, made by its first `taskpipes db revision`."""

from __future__ import annotations

from pathlib import Path

from taskpipes.store.new_histories import ensure_history


def test_a_missing_folder_becomes_an_empty_history(tmp_path: Path) -> None:
    location = tmp_path / "news" / "migrations"

    assert ensure_history(location) is True

    assert sorted(p.name for p in location.iterdir()) == ["env.py", "script.py.mako", "versions"]
    assert list((location / "versions").iterdir()) == []
    assert "run_environment()" in (location / "env.py").read_text()
    # the template imports what a revision's column types need (autogenerate's `imports`)
    assert '${imports if imports else ""}' in (location / "script.py.mako").read_text()


def test_an_existing_history_is_left_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "env.py").write_text("# the application's own\n")

    assert ensure_history(tmp_path) is False

    assert [p.name for p in tmp_path.iterdir()] == ["env.py"]
    assert (tmp_path / "env.py").read_text() == "# the application's own\n"
