"""`taskpipes runs`: the run history searched by pipeline, status, tick range, error text
and a detail, newest first, paged by a cursor that neither repeats nor skips a run."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from taskpipes.http import create_app
from taskpipes.store.run_search import RunFilter, SearchError, fingerprint, matching_ids, page
from taskpipes.store.tables import Run
from tests.clirun import run_cli
from web.api.server import serve_in_thread

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def record_runs(url: str) -> None:
    """Twelve runs: feed and rollup alternate, every third failed with an error naming
    its minute, each with a `source` detail."""
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        for minute in range(12):
            failed = minute % 3 == 0
            session.add(
                Run(
                    pipeline="feed" if minute % 2 else "rollup",
                    tick=T0 + timedelta(minutes=minute),
                    status="failed" if failed else "succeeded",
                    attempts=1,
                    error=f"HTTPError 503 at minute {minute}" if failed else None,
                    details={"source": "a" if minute < 6 else "b"},
                )
            )
    engine.dispose()


def search(url: str, runs: RunFilter, **paging: int) -> list[tuple[str, int]]:
    engine = create_engine(url)
    with Session(engine) as session:
        found = [(r.pipeline, r.tick.minute) for r in page(session, runs, **paging)]
    engine.dispose()
    return found


def test_each_filter_narrows_the_history(database_url: str) -> None:
    record_runs(database_url)

    assert search(database_url, RunFilter(pipeline="feed", statuses=("failed",))) == [
        ("feed", 9),
        ("feed", 3),
    ]
    assert search(database_url, RunFilter(since=T0 + timedelta(minutes=10))) == [
        ("feed", 11),
        ("rollup", 10),
    ]
    assert search(database_url, RunFilter(until=T0 + timedelta(minutes=1))) == [
        ("feed", 1),
        ("rollup", 0),
    ]
    # Error text in any case, and % or _ taken literally
    assert search(database_url, RunFilter(error="httperror 503 AT MINUTE 6")) == [("rollup", 6)]
    assert search(database_url, RunFilter(error="503%")) == []
    assert search(database_url, RunFilter(detail=("source", "b"), statuses=("failed",))) == [
        ("feed", 9),
        ("rollup", 6),
    ]


def test_pages_follow_each_other_without_repeat_or_gap(database_url: str) -> None:
    record_runs(database_url)
    seen: list[tuple[str, int]] = []
    engine = create_engine(database_url)
    after = None
    with Session(engine) as session:
        while batch := page(session, RunFilter(), limit=5, after=after):
            seen += [(r.pipeline, r.tick.minute) for r in batch]
            after = batch[-1].id
        everything = matching_ids(session, RunFilter())
    engine.dispose()

    assert [minute for _, minute in seen] == list(range(11, -1, -1))
    assert len(everything) == 12


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(SearchError, match="is before since"):
        RunFilter(since=T0, until=T0 - timedelta(days=1))


def test_the_fingerprint_is_the_set_not_its_order() -> None:
    assert fingerprint([3, 1, 2]) == fingerprint([1, 2, 3])
    assert fingerprint([1, 2, 3]) != fingerprint([1, 2])


def test_the_command_prints_json_and_refuses_a_bad_detail(sqlite_url: str, tmp_path: Path) -> None:
    record_runs(sqlite_url)
    env = {**os.environ, "DATABASE_URL": sqlite_url}

    found = run_cli(["runs", "--pipeline", "feed", "--status", "failed", "--json"], env, tmp_path)
    refused = run_cli(["runs", "--detail", "source"], env, tmp_path)
    table = run_cli(["runs", "--error", "minute 3"], env, tmp_path)

    assert found.returncode == 0, found.stderr
    assert [(r["pipeline"], r["status"]) for r in json.loads(found.stdout)] == [
        ("feed", "failed")
    ] * 2
    assert (refused.returncode, refused.stderr.strip()) == (
        2,
        "taskpipes runs: detail must be KEY=VALUE, got 'source'",
    )
    assert "HTTPError 503 at minute 3" in table.stdout


def test_the_api_filters_and_pages_as_the_command_does(app_env, database_url: str) -> None:  # type: ignore[no-untyped-def]
    record_runs(database_url)
    app_env(database_url)

    with serve_in_thread(create_app()) as base:
        failed = requests.get(f"{base}/api/runs", params={"pipeline": "feed", "status": "failed"})
        first = requests.get(f"{base}/api/runs", params={"limit": 5, "detail": "source=a"})
        after = first.json()["runs"][-1]["id"]
        rest = requests.get(f"{base}/api/runs", params={"detail": "source=a", "after": after})
        unknown = requests.get(f"{base}/api/runs", params={"status": "nope"})

    assert [r["error"] for r in failed.json()["runs"]] == [
        "HTTPError 503 at minute 9",
        "HTTPError 503 at minute 3",
    ]
    minutes = [datetime.fromisoformat(r["tick"]).minute for r in first.json()["runs"]]
    minutes += [datetime.fromisoformat(r["tick"]).minute for r in rest.json()["runs"]]
    assert minutes == [5, 4, 3, 2, 1, 0]
    assert unknown.status_code == 422 and "unknown status 'nope'" in unknown.text
