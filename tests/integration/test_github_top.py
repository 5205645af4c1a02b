"""github_top end to end on the in-process broker, against SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, null, select, update

import actors
from db.models import LatestRanking, RawResponse, Repository, Snapshot
from githubsim import Simulator
from pipelines.config import GITHUB_TOKEN, SUSPECT_REFETCH_S
from pipelines.github_top import refetch_delay_s
from taskpipes import registry, testing
from taskpipes.declare.settings import get_settings
from taskpipes.observe import metrics
from taskpipes.runtime.runner import Outcome, run_tick, wait_for
from taskpipes.runtime.stages import run_stage
from taskpipes.store.database import begin
from taskpipes.store.tables import Run, StageRun
from tests.app import added, quicken_retries, retry_counts, snapshot_count

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
TIMEOUT_S = 60


def run_at(sim: Simulator, tick: datetime) -> Outcome:
    sim.set_clock(tick)
    return run_tick(registry.get("github_top"), tick, TIMEOUT_S)


def table_state() -> tuple:
    """Everything a re-run could change, for before/after comparisons."""
    with begin() as session:
        snapshots = session.execute(
            select(Snapshot).order_by(Snapshot.repo_id, Snapshot.tick)
        ).scalars()
        ranking = session.execute(select(LatestRanking).order_by(LatestRanking.rank)).scalars()
        return (
            [(s.repo_id, s.tick, s.rank, s.stars, s.forks, s.stored_at) for s in snapshots],
            [(r.rank, r.repo_id, r.full_name, r.stars, r.stars_gained, r.tick) for r in ranking],
            session.scalar(select(func.count()).select_from(RawResponse)),
            session.scalar(select(func.count()).select_from(Run)),
        )


def test_ticks_store_snapshots_once_and_follow_a_rename(app_env, database_url, simulator) -> None:
    # Given an empty database and the simulator at T0
    app_env(database_url)

    # When T0 runs, then runs again
    first = run_at(simulator, T0)
    assert first.status == "succeeded", first.error
    assert snapshot_count() == 100
    before = table_state()
    again = run_at(simulator, T0)

    # Then the second run changes nothing
    assert again.status == "succeeded" and again.already_done
    assert table_state() == before

    # When a repository is renamed and T+10m runs
    renamed_id = simulator.top(T0)[5]["id"]
    old_name = simulator.top(T0)[5]["full_name"]
    simulator.rename(old_name, "renamed-owner/renamed-repo")
    second = run_at(simulator, T0 + timedelta(minutes=10))

    # Then there are 200 rows, and the renamed repository is one repository with two snapshots
    assert second.status == "succeeded", second.error
    assert snapshot_count() == 200
    with begin() as session:
        repo = session.get_one(Repository, renamed_id)
        assert repo.full_name == "renamed-owner/renamed-repo"
        assert session.scalar(select(func.count()).where(Snapshot.repo_id == renamed_id)) == 2
        ranking = session.scalars(select(LatestRanking).order_by(LatestRanking.rank)).all()
    expected = simulator.top(T0 + timedelta(minutes=10))
    assert [(r.repo_id, r.stars) for r in ranking] == sorted(
        ((i["id"], i["stargazers_count"]) for i in expected), key=lambda p: (-p[1], p[0])
    )
    gained = {r.repo_id: r.stars_gained for r in ranking}
    stars_at_t0 = {i["id"]: i["stargazers_count"] for i in simulator.top(T0)}
    assert gained == {i["id"]: i["stargazers_count"] - stars_at_t0[i["id"]] for i in expected}


def test_stars_gained_is_null_for_a_newcomer(app_env, sqlite_url, simulator) -> None:
    app_env(sqlite_url)
    # The simulator's top 100 changes around 2026-09-05 (browser-use in, tauri out).
    early = datetime(2026, 8, 22, tzinfo=UTC)
    late = datetime(2026, 9, 15, tzinfo=UTC)
    assert run_at(simulator, early).status == "succeeded"

    assert run_at(simulator, late).status == "succeeded"

    ids_early = {i["id"] for i in simulator.top(early)}
    with begin() as session:
        ranking = session.scalars(select(LatestRanking)).all()
    newcomers = [r for r in ranking if r.repo_id not in ids_early]
    assert newcomers, "the simulator should bring a newcomer in between these ticks"
    assert all(r.stars_gained is None for r in newcomers)
    assert all(r.stars_gained is not None for r in ranking if r.repo_id in ids_early)


def inversions(stars: list[int]) -> int:
    return sum(1 for i, above in enumerate(stars) for below in stars[i + 1 :] if below > above)


def test_an_answer_out_of_star_order_is_stored_not_fetched_again(
    app_env, sqlite_url, simulator
) -> None:
    # Given GitHub's search index lagging three days behind the counts it reports
    app_env(sqlite_url)
    simulator.set_index_lag(3 * 24 * 3600)
    served = simulator.top(T0)
    out_of_order = inversions([i["stargazers_count"] for i in served])
    assert out_of_order > 0

    # When the tick runs
    outcome = run_at(simulator, T0)

    # Then the one answer is stored, ranked by its counts, its inversions recorded
    assert outcome.status == "succeeded", outcome.error
    assert simulator.requests()["counts"]["search"]["total"] == 1
    with begin() as session:
        assert session.scalar(select(func.count()).select_from(RawResponse)) == 1
        details = session.get_one(Run, outcome.run_id).details
        ranking = session.scalars(select(LatestRanking).order_by(LatestRanking.rank)).all()
    assert details == {"rank_inversions": out_of_order}
    assert [(r.repo_id, r.stars) for r in ranking] == sorted(
        ((i["id"], i["stargazers_count"]) for i in served), key=lambda p: (-p[1], p[0])
    )
    gauge = REGISTRY.get_sample_value("taskpipes_github_rank_inversions")
    assert gauge == out_of_order


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    quicken_retries(monkeypatch, "github_top_fetch")


def seconds_to_first_answer(run_id: int) -> float:
    """From the run's start to the stored 200 answer, on the timestamps the run recorded."""
    with begin() as session:
        run = session.get_one(Run, run_id)
        fetched = session.scalars(select(RawResponse.fetched_at)).one()
    return (fetched - run.started_at).total_seconds()


def test_rate_limit_403_waits_for_the_reset_then_succeeds(
    app_env, sqlite_url, simulator, quick_retries
) -> None:
    app_env(sqlite_url)
    # The reset is 1-2 s away (whole epoch seconds), far longer than an ordinary retry
    simulator.add_fault("search", "rate_limit_403", reset_in=2)

    with retry_counts("github_top_fetch") as retries, sent_delays("github_top_fetch") as delays:
        outcome = run_at(simulator, T0)

    assert outcome.status == "succeeded", outcome.error
    counts = simulator.requests()["counts"]["search"]["by_status"]
    assert counts == {"403": 1, "200": 1}
    # Sent again for the reset, waited out, without spending a retry
    first, again = delays.values()
    assert first is None and again is not None and 1000 <= again <= 2000, delays
    assert seconds_to_first_answer(outcome.run_id) >= 1.0
    assert retries == [0, 0]


@pytest.mark.parametrize(
    ("fault", "params", "status"),
    [("primary_limit_429", {"reset_in": 2}, "429"), ("secondary_limit", {"retry_after": 1}, "403")],
)
def test_primary_429_and_secondary_403_are_waited_out(
    app_env, sqlite_url, simulator, fault, params, status, quick_retries
) -> None:
    app_env(sqlite_url)
    simulator.add_fault("search", fault, **params)

    with retry_counts("github_top_fetch") as retries:
        outcome = run_at(simulator, T0)

    assert outcome.status == "succeeded", outcome.error
    assert simulator.requests()["counts"]["search"]["by_status"] == {status: 1, "200": 1}
    assert (
        testing.read_run(outcome.run_id).stages["fetch"].attempts == 2
    )  # the limited attempt, then the one after GitHub's wait
    assert retries == [0, 0]  # and the wait spent no retry
    assert seconds_to_first_answer(outcome.run_id) >= 0.5  # an ordinary retry: 0.1-0.2 s


def test_retry_after_429_and_a_500_are_retried(
    app_env, sqlite_url, simulator, quick_retries
) -> None:
    app_env(sqlite_url)
    simulator.add_fault("search", "rate_limit_429", retry_after=1)
    simulator.add_fault("search", "server_error")

    with retry_counts("github_top_fetch") as retries, sent_delays("github_top_fetch") as delays:
        outcome = run_at(simulator, T0)

    assert outcome.status == "succeeded", outcome.error
    assert simulator.requests()["counts"]["search"]["by_status"] == {"429": 1, "500": 1, "200": 1}
    # Sent again when retry-after says (the 500's retry is the same message, sent again)
    assert list(delays.values()) == [None, 1000]
    assert seconds_to_first_answer(outcome.run_id) >= 1.0
    # The 429 is waited out for free; only the 500 spends a retry
    assert retries == [0, 0, 1]


def test_malformed_json_fails_the_run_and_keeps_stored_data(
    app_env, database_url, simulator
) -> None:
    app_env(database_url)
    assert run_at(simulator, T0).status == "succeeded"
    before = table_state()
    simulator.add_fault("search", "malformed_json")

    outcome = run_at(simulator, T0 + timedelta(minutes=10))

    assert outcome.status == "failed"
    assert "not valid JSON" in (outcome.error or "")
    after = table_state()
    assert after[:3] == before[:3]


# Suspect answers are fetched again a fifth of a second later here, doubling each time,
# instead of the 5 s production waits (test_the_refetch_waits_five_then_ten_seconds).
QUICK_REFETCH_S = 0.2


@pytest.mark.parametrize("fault", ["incomplete_results", "duplicate_id", "short_page"])
def test_a_suspect_answer_is_fetched_again(app_env, sqlite_url, simulator, fault) -> None:
    app_env(sqlite_url, TASKPIPES_SUSPECT_REFETCH_S=str(QUICK_REFETCH_S))
    simulator.add_fault("search", fault)

    with sent_delays("github_top_fetch") as delays:
        outcome = run_at(simulator, T0)

    assert outcome.status == "succeeded", outcome.error
    assert snapshot_count() == 100
    # Fetched again once, asked for and waited out TASKPIPES_SUSPECT_REFETCH_S later
    assert list(delays.values()) == [None, 200]
    gaps = fetch_gaps()
    assert len(gaps) == 1 and gaps[0] >= QUICK_REFETCH_S, gaps


def test_a_persistently_suspect_answer_fails_without_storing(
    app_env, sqlite_url, simulator
) -> None:
    app_env(sqlite_url, TASKPIPES_SUSPECT_REFETCH_S=str(QUICK_REFETCH_S))
    # Each fetch reads two pages (the short first page makes it follow `link`).
    simulator.add_fault("search", "incomplete_results", times=10)

    with sent_delays("github_top_fetch") as delays:
        outcome = run_at(simulator, T0)

    assert outcome.status == "failed"
    assert "incomplete_results" in (outcome.error or "")
    assert "3 suspect answers in a row" in (outcome.error or "")
    assert snapshot_count() == 0
    # Three fetches, two pages each, waiting one delay, then twice that, before the next
    assert simulator.requests()["counts"]["search"]["total"] == 6
    assert list(delays.values()) == [None, 200, 400]
    gaps = fetch_gaps()
    assert len(gaps) == 2 and gaps[0] >= QUICK_REFETCH_S and gaps[1] >= 2 * QUICK_REFETCH_S, gaps


def test_the_refetch_waits_five_then_ten_seconds() -> None:
    # Given the settings of a deployment that sets nothing
    first_s = SUSPECT_REFETCH_S.load(None)

    # Then the fetch after the first suspect answer waits 5 s, after the second 10 s
    assert [refetch_delay_s(fetched, first_s) for fetched in (1, 2)] == [5.0, 10.0]
    assert SUSPECT_REFETCH_S.load("0.5") == 0.5


def fetch_gaps() -> list[float]:
    """Seconds between the stored answers of the run's fetches, oldest first."""
    with begin() as session:
        fetched = sorted(session.scalars(select(RawResponse.fetched_at)))
    return [(b - a).total_seconds() for a, b in zip(fetched, fetched[1:], strict=False)]


@contextmanager
def sent_delays(actor_name: str) -> Iterator[dict[str, int | None]]:
    """The delay (ms, None for none) of each message sent to `actor_name`, by id. A
    delayed message is enqueued again, undelayed and under its id, when it falls due: the
    first enqueue of each id is the send."""
    by_id: dict[str, int | None] = {}

    class RecordDelays(dramatiq.Middleware):
        def before_enqueue(self, broker, message, delay):  # type: ignore[no-untyped-def]
            if message.actor_name == actor_name:
                by_id.setdefault(message.message_id, delay)

    with added(RecordDelays()):
        yield by_id


class FailFirstSend(dramatiq.Middleware):
    """Make the first enqueue of one actor fail, as a lost broker connection would."""

    def __init__(self, actor_name: str) -> None:
        self.actor_name = actor_name
        self.failed = 0

    def before_enqueue(self, broker, message, delay):  # type: ignore[no-untyped-def]
        if message.actor_name == self.actor_name and not self.failed:
            self.failed += 1
            raise ConnectionError("simulated broker failure during hand-off")


def test_a_failed_hand_off_is_retried_and_the_run_completes_once(
    app_env, sqlite_url, simulator
) -> None:
    app_env(sqlite_url)
    breaker = FailFirstSend("github_top_store")
    actors.broker.add_middleware(breaker)
    try:
        outcome = run_at(simulator, T0)
    finally:
        actors.broker.middleware.remove(breaker)

    assert breaker.failed == 1
    assert outcome.status == "succeeded", outcome.error
    assert snapshot_count() == 100
    stages = {stage: (status, rows) for stage, status, _, rows in outcome.stages}
    # Rows written, as counted by the kit: fetch writes nothing (outside), normalize keeps
    # the answer (one raw_responses row)
    assert stages == {
        "fetch": ("succeeded", 0),
        "normalize": ("succeeded", 1),
        "store": ("succeeded", 100),
        "aggregate": ("succeeded", 100),
    }
    with begin() as session:
        assert session.scalar(select(func.count()).select_from(RawResponse)) == 1
        assert session.get_one(Run, outcome.run_id).attempts == 1


def test_a_stalled_answer_times_out_and_is_retried(
    app_env, sqlite_url, simulator, quick_retries
) -> None:
    app_env(sqlite_url, TASKPIPES_GITHUB_TIMEOUT="1")
    simulator.add_fault("search", "stall", seconds=3)

    outcome = run_at(simulator, T0)

    assert outcome.status == "succeeded", outcome.error
    assert "fetch: TransientError: GitHub search: ReadTimeout" in (outcome.error or "")
    assert testing.read_run(outcome.run_id).stages["fetch"].attempts == 2


def test_the_token_is_sent_but_never_shown(
    app_env, sqlite_url, simulator, caplog, quick_retries
) -> None:
    token = "ghp_TASKPIPESSECRET0123456789abcdef"
    app_env(sqlite_url, GITHUB_TOKEN=token)
    caplog.set_level(logging.DEBUG)
    simulator.add_fault("search", "server_error")
    simulator.add_fault("search", "malformed_json")

    outcome = run_at(simulator, T0)

    assert outcome.status == "failed"
    assert simulator.requests()["last"]["search"]["authorization"] is True
    with begin() as session:
        errors = [r.error for r in session.scalars(select(Run))]
        errors += [s.error for s in session.scalars(select(StageRun))]
    shown = "\n".join(
        [
            caplog.text,
            metrics.metrics_text().decode(),
            repr(get_settings()),
            repr(GITHUB_TOKEN),
            *map(str, errors),
        ]
    )
    assert "not valid JSON" in shown
    assert token not in shown


def test_a_stage_message_of_a_run_from_before_outputs_reads_the_kept_answer(
    app_env, database_url, simulator
) -> None:
    # Given a run as an upgrade finds it: fetched and normalized by the old code (no output
    # stored, the answer kept in raw_responses), its store message still in RabbitMQ
    app_env(database_url)
    run_id = run_at(simulator, T0).run_id
    with begin() as session:
        session.execute(update(StageRun).where(StageRun.run_id == run_id).values(output=null()))
        session.execute(
            delete(StageRun).where(StageRun.run_id == run_id, StageRun.stage != "fetch")
            .where(StageRun.stage != "normalize")
        )  # fmt: skip
        session.execute(delete(Snapshot))
        session.execute(update(Run).where(Run.id == run_id).values(status="running"))

    # When that message comes
    github_top = registry.get("github_top")
    run_stage(github_top, github_top.stage("store"), run_id)
    outcome = wait_for(run_id, TIMEOUT_S)

    # Then store read the kept answer, as before, and the run completed
    assert outcome.status == "succeeded", outcome.error
    assert snapshot_count() == 100
    with begin() as session:
        assert session.scalar(select(func.count()).select_from(LatestRanking)) == 100
