"""Bad outside data, end to end: each kind ends in a correct stored tick or a failed run
with a clear error, and the tick stored before stays as it was (issue 10, Part 2 item 6).

github_top runs on a SQLite file with the in-process broker against the simulator over
loopback HTTP; each kind is one of the simulator's fault switches. Elsewhere: a stalled
answer (test_github_top), a secondary limit without retry-after and a 10 MB body without
content-length read with bounded memory (test_github_client), incomplete_results, 99 items
and duplicate ids refetched (test_github_top), arbitrary JSON into normalize
(test_normalize).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import LatestRanking, RawResponse, Repository, Snapshot
from githubsim import Simulator
from githubsim.badbodies import EMOJI_CJK, decorate
from pipelines.github_body import MAX_BODY_BYTES
from taskpipes import registry
from taskpipes.runtime.runner import Outcome, run_tick
from taskpipes.store.database import begin
from tests.app import quicken_retries

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=10)
TIMEOUT_S = 60
TOKEN = "ghp_BADDATAMARKER0123456789abcdefghij"

# (fault, its parameters): answers the run waits out or retries, then stores correctly.
RECOVERED = [
    ("secondary_limit", {"retry_after": 1}),  # 403 with retry-after, quota left
    ("rate_limit_403", {"reset_in": 1}),  # 403 without retry-after: remaining 0, a reset
    ("rate_limit_429", {"retry_after": 1}),
    ("primary_limit_429", {"reset_in": 1}),
    ("server_error", {}),  # 500
    ("bad_gateway_html", {}),  # 502 with a proxy's HTML page
    ("unavailable", {}),  # 503
    ("connection_reset", {}),
    ("truncated_body", {}),  # cut off mid-JSON
]
# (fault, what the run's error must say): answers that fail the run at once.
REFUSED = [
    ("malformed_json", "answer is not valid JSON (application/json"),
    ("html_body", "answer is not valid JSON (text/html"),
    ("huge_body", f"answer exceeds {MAX_BODY_BYTES} bytes (10485760 bytes announced)"),
    ("negative_count", "field 'forks_count' must be a non-negative integer, got -1"),
    ("null_full_name", "field 'full_name' must be 'owner/name', got None"),
]


def run_at(sim: Simulator, tick: datetime) -> Outcome:
    sim.set_clock(tick)
    return run_tick(registry.get("github_top"), tick, TIMEOUT_S)


def stored_state() -> tuple[Any, ...]:
    with begin() as session:
        snapshots = session.execute(
            select(Snapshot.repo_id, Snapshot.tick, Snapshot.rank, Snapshot.stars)
        ).all()
        ranking = session.execute(
            select(LatestRanking.rank, LatestRanking.repo_id, LatestRanking.stars)
        ).all()
        names = session.execute(select(Repository.id, Repository.full_name)).all()
    return sorted(snapshots), sorted(ranking), sorted(names)


def ranking() -> list[tuple[int, str, int]]:
    with begin() as session:
        rows = session.execute(
            select(LatestRanking.repo_id, LatestRanking.full_name, LatestRanking.stars).order_by(
                LatestRanking.rank
            )
        ).all()
    return [tuple(row) for row in rows]


def served_ranking(items: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    listed = [(i["id"], i["full_name"], i["stargazers_count"]) for i in items]
    return sorted(listed, key=lambda row: (-row[2], row[0]))


def store_earlier_tick(app_env, database_url: str, simulator: Simulator) -> tuple[Any, ...]:  # type: ignore[no-untyped-def]
    """Fill the database with one good tick, T0; returns what it holds."""
    app_env(database_url, GITHUB_TOKEN=TOKEN)
    assert run_at(simulator, T0).status == "succeeded"
    return stored_state()


@pytest.fixture
def earlier_tick(app_env, sqlite_url, simulator) -> tuple[Any, ...]:  # type: ignore[no-untyped-def]
    return store_earlier_tick(app_env, sqlite_url, simulator)


@pytest.mark.parametrize(("fault", "params"), RECOVERED, ids=[f for f, _ in RECOVERED])
def test_a_transient_bad_answer_ends_in_a_correct_stored_tick(
    earlier_tick, simulator, fault: str, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ordinary retry comes a fraction of a second later, not the 2 s a deployment waits
    quicken_retries(monkeypatch, "github_top_fetch")
    simulator.add_fault("search", fault, **params)

    outcome = run_at(simulator, LATER)

    assert outcome.status == "succeeded", outcome.error
    assert ranking() == served_ranking(simulator.top(LATER))
    with begin() as session:
        assert session.scalar(select(func.count()).select_from(Snapshot)) == 200
        assert session.scalar(select(func.count()).select_from(RawResponse)) == 2
    assert set(earlier_tick[0]) <= set(stored_state()[0])


@pytest.mark.parametrize(("fault", "message"), REFUSED, ids=[f for f, _ in REFUSED])
def test_a_bad_answer_fails_the_run_clearly_and_keeps_earlier_data(
    earlier_tick, simulator, fault: str, message: str
) -> None:
    simulator.add_fault("search", fault)

    outcome = run_at(simulator, LATER)

    assert outcome.status == "failed"
    assert message in (outcome.error or "")
    assert TOKEN not in (outcome.error or "")
    assert stored_state() == earlier_tick


def test_emoji_and_cjk_everywhere_are_stored_as_sent(app_env, database_url, simulator) -> None:
    store_earlier_tick(app_env, database_url, simulator)
    simulator.add_fault("search", "unicode_everywhere")

    outcome = run_at(simulator, LATER)

    assert outcome.status == "succeeded", outcome.error
    served = [decorate(item) for item in simulator.top(LATER)]
    assert ranking() == served_ranking(served)
    assert any("日本/" in name and name.endswith("-🚀") for _, name, _ in ranking())
    with begin() as session:
        descriptions = session.scalars(select(Repository.description)).all()
        languages = session.scalars(select(Repository.language)).all()
    assert sum(EMOJI_CJK in (text or "") for text in descriptions) >= 90
    assert any(EMOJI_CJK in (language or "") for language in languages)
