"""stargazers: pacing, resumability, the 400-page cap and the star history API.

End-to-end tests run the real pipeline on the in-process broker against the simulator on
loopback, on SQLite and PostgreSQL. The simulator's clock is set early in a repository's
life so that it has a few thousand stars at most, and the tests stay fast.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from db.models import LatestRanking, StarEvent, StargazerCursor, StargazerPage, StargazerRun
from githubsim import Simulator
from pipelines import spread
from pipelines.github_errors import InvalidPayload
from pipelines.star_history import Stargazer, daily_cumulative, every, parse_stargazers
from taskpipes import registry
from taskpipes.cli.main import main as cli_main
from taskpipes.runtime.runner import Outcome, run_tick
from taskpipes.store.database import begin
from taskpipes.store.tables import Run, StageRun

REPO = "axios/axios"
TICK = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
TIMEOUT_S = 120
# Fast enough that a test takes seconds: neither budget binds.
FAST = {"rate": 1_000_000, "api_rate": 100_000_000}


# --- the pure core ----------------------------------------------------------------------


def test_the_gap_is_the_slower_budget() -> None:
    assert spread.page_gap(2000, 4000) == 0.9  # the API budget binds: 3600 / 4000
    assert spread.page_gap(2000, 50) == 72.0
    assert spread.page_gap(500, 1_000_000) == 0.2  # the insert budget binds: 100 / 500
    with pytest.raises(ValueError):
        spread.page_gap(0, 50)


def test_waves_stay_short_and_small() -> None:
    assert spread.wave_size(0.9) == 200  # 333 would fit in 5 minutes; memory caps it
    assert spread.wave_size(72.0) == 4
    assert spread.wave_size(3600.0) == 1  # one page per wave, the wave waits in steps
    assert spread.wave_delays(3, 0.5) == [0.0, 0.5, 1.0]
    assert max(spread.wave_delays(spread.wave_size(1.0), 1.0)) < spread.WAVE_SPAN_S


def test_pages_to_fetch_resume_from_the_cursor() -> None:
    assert spread.pages_to_fetch(0, 1, set()) == [1]
    assert spread.pages_to_fetch(1234, 1, set()) == list(range(1, 14))
    # A re-run re-fetches the partly filled last page and whatever is new after it.
    assert spread.pages_to_fetch(1350, 13, set(range(1, 13))) == [13, 14]
    # A killed run left pages 1-3 and 7 stored full.
    assert spread.pages_to_fetch(1000, 1, {1, 2, 3, 7}) == [4, 5, 6, 8, 9, 10]
    assert spread.pages_to_fetch(45_000, 401, set(range(1, 401))) == []
    assert spread.last_page(45_000) == 400 and spread.is_capped(40_001)
    assert not spread.is_capped(40_000)
    assert spread.first_unstored({1, 2, 3, 7}) == 4 and spread.first_unstored(set()) == 1


def test_daily_cumulative_is_dense_and_sampled_with_the_last_day() -> None:
    t = datetime(2026, 1, 1, 23, 59, tzinfo=UTC)
    starred = [t, t + timedelta(minutes=2), t + timedelta(days=4)]
    points = daily_cumulative(starred)
    assert [(d.date().isoformat(), n) for d, n in points] == [
        ("2026-01-01", 1),
        ("2026-01-02", 2),
        ("2026-01-03", 2),
        ("2026-01-04", 2),
        ("2026-01-05", 3),
    ]
    assert [n for _, n in every(points, 3)] == [1, 2, 3]
    assert daily_cumulative([]) == [] and every([], 7) == []


def test_parse_stargazers() -> None:
    page = [{"starred_at": "2020-01-02T03:04:05Z", "user": {"login": "u", "id": 7}}]
    assert parse_stargazers(page, "p") == [Stargazer(7, datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC))]
    with pytest.raises(InvalidPayload, match="star\\+json"):
        parse_stargazers([{"login": "u", "id": 7}], "p")  # the plain media type
    with pytest.raises(InvalidPayload, match="expected a JSON list"):
        parse_stargazers({"message": "Not Found"}, "p")


JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda c: st.lists(c) | st.dictionaries(st.text(), c),
)
# Entries close to real ones: each part may be right or junk, so every check is reached.
ENTRIES = st.fixed_dictionaries(
    {
        "starred_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
        | st.datetimes().map(lambda d: d.isoformat())
        | JUNK,
        "user": st.fixed_dictionaries({"id": st.integers(-2, 10**9) | JUNK}) | JUNK,
    }
)


@given(JUNK | st.lists(ENTRIES | JUNK, max_size=4))
def test_parse_stargazers_rejects_any_junk_cleanly(payload: object) -> None:
    try:
        parsed = parse_stargazers(payload, "page 3")
    except InvalidPayload as exc:
        # One line naming the page (and the entry, for an entry's fault)
        assert str(exc).startswith("page 3") and "\n" not in str(exc), str(exc)
    else:
        # Only a list of valid entries gets here: each kept, in order, in UTC
        assert isinstance(payload, list) and len(parsed) == len(payload)
        for entry, star in zip(payload, parsed, strict=True):
            assert star.user_id == entry["user"]["id"] > 0
            assert star.starred_at.utcoffset() == timedelta(0)
            assert star.starred_at == datetime.fromisoformat(entry["starred_at"])


# --- end to end -------------------------------------------------------------------------


def clock_at_stars(sim: Simulator, full_name: str, stars: int) -> datetime:
    """Set the simulator's clock to one second after the repository's `stars`-th star."""
    repo = sim.state.repos[sim.state.names.resolve(full_name).repo_id]
    at = datetime.fromtimestamp(repo.curve.starred_at(stars - 1) + 1, UTC)
    sim.set_clock(at)
    assert sim.stargazers(full_name, at) == stars
    return at


def simulator_events(sim: Simulator, full_name: str) -> set[tuple[int, datetime]]:
    """Every (user id, starred_at) the simulator lists now, read page by page over HTTP
    (one kept-alive connection: up to 400 pages)."""
    events: set[tuple[int, datetime]] = set()
    with requests.Session() as http:
        for page in range(1, spread.PAGE_CAP + 1):
            answer = http.get(
                f"{sim.url}/repos/{full_name}/stargazers",
                params={"per_page": 100, "page": page},
                headers={"Accept": "application/vnd.github.star+json"},
                timeout=10,
            )
            entries = answer.json()
            events |= {(e["user"]["id"], datetime.fromisoformat(e["starred_at"])) for e in entries}
            if len(entries) < 100:
                break
    return events


def stored_events() -> set[tuple[int, datetime]]:
    with begin() as session:
        rows = session.execute(select(StarEvent.user_id, StarEvent.starred_at)).all()
    assert len(rows) == len(set(rows)), "an event is stored twice"
    return set(rows)


def run_stargazers(tick: datetime, **options: object) -> Outcome:
    return run_tick(registry.get("stargazers"), tick, TIMEOUT_S, options)


def run_state(run_id: int) -> StargazerRun:
    with begin() as session:
        return session.get_one(StargazerRun, run_id)


def cursor(full_name: str) -> StargazerCursor:
    with begin() as session:
        return session.scalars(
            select(StargazerCursor).where(StargazerCursor.full_name == full_name)
        ).one()


def test_events_match_the_simulator_and_reruns_add_only_new_stars(
    app_env, database_url, simulator
) -> None:
    # Given axios with 1234 stars
    app_env(database_url)
    clock_at_stars(simulator, REPO, 1234)

    # When it runs
    first = run_stargazers(TICK, repo=REPO, **FAST)

    # Then every star is stored once, as the simulator lists it, and the run is booked
    assert first.status == "succeeded", first.error
    assert stored_events() == simulator_events(simulator, REPO)
    assert len(stored_events()) == 1234
    stages = {stage: (status, rows) for stage, status, _, rows in first.stages}
    assert stages == {
        "targets": ("succeeded", 0),
        "plan": ("succeeded", 13),
        "pages": ("succeeded", 1234),
    }
    assert (run_state(first.run_id).planned_pages, run_state(first.run_id).done_pages) == (13, 13)
    assert (cursor(REPO).next_page, cursor(REPO).complete) == (13, True)
    with begin() as session:
        inserted_before = dict(
            session.execute(select(StarEvent.user_id, StarEvent.inserted_at)).all()
        )

    # When it runs again with nothing new
    again = run_stargazers(TICK + timedelta(minutes=1), repo=REPO, **FAST)

    # Then only the partly filled last page is fetched, and nothing changes
    assert again.status == "succeeded", again.error
    assert run_state(again.run_id).planned_pages == 1
    with begin() as session:
        assert (
            dict(session.execute(select(StarEvent.user_id, StarEvent.inserted_at)).all())
            == inserted_before
        )

    # When 116 more stars arrive and it runs again
    clock_at_stars(simulator, REPO, 1350)
    third = run_stargazers(TICK + timedelta(minutes=2), repo=REPO, **FAST)

    # Then pages 13 and 14 are fetched and the events are the simulator's list again
    assert third.status == "succeeded", third.error
    assert run_state(third.run_id).planned_pages == 2
    assert stored_events() == simulator_events(simulator, REPO)
    assert cursor(REPO).next_page == 14


def test_star_history_api(app_env, sqlite_url, simulator, api_server: str) -> None:
    app_env(sqlite_url)
    clock_at_stars(simulator, REPO, 1234)
    asked = datetime.now(UTC)
    assert run_stargazers(TICK, repo=REPO, **FAST).status == "succeeded"

    def get(path: str, **params: str) -> requests.Response:
        return requests.get(f"{api_server}{path}", params=params, timeout=10)

    daily = get(f"/api/repos/{REPO}/stars", step="1d")
    weekly = get(f"/api/repos/{REPO.upper()}/stars", step="7d")
    unknown = get("/api/repos/nobody/nothing/stars")
    bad_step = get(f"/api/repos/{REPO}/stars", step="2h")

    assert daily.status_code == 200
    body = daily.json()
    assert body["full_name"] == REPO and body["complete"] is True
    # The count the plan used was GitHub's answer at the time of the run.
    assert asked <= datetime.fromisoformat(body["as_of"]) <= datetime.now(UTC)
    stars = [p["stars"] for p in body["points"]]
    assert stars == sorted(stars) and stars[-1] == 1234
    days = [datetime.fromisoformat(p["date"]) for p in body["points"]]
    assert all(b - a == timedelta(days=1) for a, b in zip(days, days[1:], strict=False))
    first_star = min(t for _, t in simulator_events(simulator, REPO))
    assert body["points"][0]["date"] == first_star.date().isoformat()
    assert weekly.status_code == 200 and weekly.json()["points"] == body["points"][::7] + (
        [] if (len(body["points"]) - 1) % 7 == 0 else body["points"][-1:]
    )
    assert (
        unknown.status_code == 404
        and "no star history for nobody/nothing" in unknown.json()["detail"]
    )
    assert bad_step.status_code == 422


# More stars than GitHub lists (400 pages of 100).
PAST_THE_CAP = 40_050


@pytest.fixture(scope="module")
def listed_past_the_cap(simulator_server: Simulator) -> set[tuple[int, datetime]]:
    """What the simulator lists of REPO at PAST_THE_CAP stars, read over HTTP once for both
    databases: 400 pages take seconds, and the simulator's answer is the same each time."""
    simulator_server.reset()
    try:
        clock_at_stars(simulator_server, REPO, PAST_THE_CAP)
        return simulator_events(simulator_server, REPO)
    finally:
        simulator_server.reset()


def test_the_400_page_cap_gives_complete_false(
    app_env, database_url, simulator, api_server: str, listed_past_the_cap
) -> None:
    # Given a repository with more stars than GitHub lists (400 pages of 100)
    app_env(database_url)
    clock_at_stars(simulator, REPO, PAST_THE_CAP)

    outcome = run_stargazers(TICK, repo=REPO, **FAST)

    # Then the 40,000 listed stars are stored, no more, and the history says it is cut
    assert outcome.status == "succeeded", outcome.error
    assert run_state(outcome.run_id).planned_pages == 400
    listed = listed_past_the_cap
    assert len(listed) == 40_000 and stored_events() == listed
    history = requests.get(f"{api_server}/api/repos/{REPO}/stars", timeout=10).json()
    assert history["complete"] is False
    assert history["points"][-1]["stars"] == 40_000
    assert datetime.fromisoformat(history["as_of"]) == max(t for _, t in listed)
    # A re-run has nothing it could fetch
    again = run_stargazers(TICK + timedelta(minutes=1), repo=REPO, **FAST)
    assert again.status == "succeeded" and run_state(again.run_id).planned_pages == 0


# Dramatiq's delays are whole milliseconds, truncated: a few of them add up to this at most.
SLACK_S = 0.05


def seconds_since_start(run_id: int, moment: datetime) -> float:
    """From the run's start to `moment`, both as stored by the run."""
    with begin() as session:
        started = session.get_one(Run, run_id).started_at
    assert started is not None
    return (moment - started).total_seconds()


def test_inserts_stay_at_or_below_the_rate(app_env, database_url, simulator) -> None:
    # Given 2000 stars (20 pages) and --rate 500: one page every 0.2 s
    app_env(database_url)
    clock_at_stars(simulator, REPO, 2000)
    rate = 500

    outcome = run_stargazers(TICK, repo=REPO, rate=rate, api_rate=100_000_000)

    # Then, on the stored timestamps, the last page's rows went in no sooner than 20 pages
    # at the rate allow after the run started: the plan's request waits a gap, then one
    # page per gap. A late pick-up only makes it later; 10% over the rate would end at 3.64 s.
    assert outcome.status == "succeeded", outcome.error
    with begin() as session:
        batches = session.execute(
            select(StarEvent.inserted_at, func.count())
            .group_by(StarEvent.inserted_at)
            .order_by(StarEvent.inserted_at)
        ).all()
    assert len(batches) == 20 and sum(n for _, n in batches) == 2000
    gap = 100 / rate
    assert seconds_since_start(outcome.run_id, batches[-1][0]) >= 20 * gap - SLACK_S


def test_the_api_budget_paces_requests_and_a_429_is_waited_out(
    app_env, sqlite_url, simulator
) -> None:
    # Given --api-rate 18000/h (a request every 0.2 s) and a secondary limit on one page
    app_env(sqlite_url)
    clock_at_stars(simulator, REPO, 1000)
    simulator.add_fault("stargazers", "rate_limit_429", retry_after=1)

    outcome = run_stargazers(TICK, repo=REPO, rate=1_000_000, api_rate=18_000)

    # Then the run completes; the 429 page was sent again after its wait, not retried
    assert outcome.status == "succeeded", outcome.error
    counts = simulator.requests()["counts"]["stargazers"]["by_status"]
    assert counts == {"429": 1, "200": 10}
    with begin() as session:
        resent = session.scalar(select(StargazerPage.stored_at).where(StargazerPage.page == 1))
        paced = sorted(
            session.scalars(select(StargazerPage.stored_at).where(StargazerPage.page > 1))
        )
    # Page 1, due 0.2 s before page 2, waited out its second.
    assert resent >= paced[0] + timedelta(seconds=0.7)
    # The plan's request and pages 1-10 one gap (0.2 s) apart: page 10 no sooner than 2 s
    # after the start (10% over the budget would be 1.82 s)
    assert seconds_since_start(outcome.run_id, paced[-1]) >= 10 * 0.2 - SLACK_S


def test_two_runs_at_once_share_one_api_budget(app_env, database_url, simulator) -> None:
    # Given two runs of 10 pages each started together, each at --api-rate 18000/h (a
    # request every 0.2 s): paced apart, together they would ask twice as often
    app_env(database_url)
    clock_at_stars(simulator, REPO, 1000)
    ticks = (TICK, TICK + timedelta(minutes=1))
    budget = {"repo": REPO, "rate": 1_000_000, "api_rate": 18_000}

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda tick: run_stargazers(tick, **budget), ticks))

    # Then both complete, and their pages together went out no faster than one budget
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"], outcomes
    with begin() as session:
        stored = sorted(session.scalars(select(StargazerPage.stored_at)))
        planned = session.scalar(select(func.sum(StargazerRun.planned_pages)))
    assert len(stored) == planned and planned > 10  # the second run fetched pages as well
    # One shared budget: every page its own 0.2 s slot after the first run started, where
    # two budgets would have finished in about half the time
    since_first_start = max(seconds_since_start(o.run_id, stored[-1]) for o in outcomes)
    assert since_first_start >= (len(stored) - 1) * 0.2 - SLACK_S
    assert stored_events() == simulator_events(simulator, REPO)


def test_the_top_100_mode_reads_the_latest_ranking(app_env, sqlite_url, simulator) -> None:
    app_env(sqlite_url)
    clock_at_stars(simulator, REPO, 250)
    assert run_stargazers(TICK, **FAST).status == "failed"  # no ranking stored yet
    repo_id = simulator.state.names.resolve(REPO).repo_id
    with begin() as session:
        session.add(
            LatestRanking(rank=1, repo_id=repo_id, full_name=REPO, stars=250, forks=0, tick=TICK)
        )

    outcome = run_stargazers(TICK + timedelta(minutes=1), **FAST)

    assert outcome.status == "succeeded", outcome.error
    assert stored_events() == simulator_events(simulator, REPO)
    assert cursor(REPO).as_of == TICK  # the count the plan used was the ranking's


def test_killed_midway_a_rerun_completes_without_duplicates(
    app_env, database_url, simulator
) -> None:
    # Given the CLI running 15 pages at 5 pages a second in its own process
    app_env(database_url)
    clock_at_stars(simulator, REPO, 1500)
    env = {k: v for k, v in os.environ.items() if k != "BROKER_URL"}
    command = [sys.executable, "-m", "taskpipes.cli.main", "run", "stargazers", "--repo", REPO]
    command += ["--api-rate", "100000000"]
    child = subprocess.Popen(
        [*command, "--at", TICK.isoformat(), "--rate", "500"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    # When it is killed once a few pages are stored
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while stored_pages() < 3:
            assert child.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no page was stored in time"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    killed_at = stored_pages()
    assert 3 <= killed_at < 15

    # Then a new run fetches only the pages not stored yet and completes the list
    second = subprocess.run(
        [*command, "--at", (TICK + timedelta(minutes=1)).isoformat(), "--rate", "1000000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert stored_events() == simulator_events(simulator, REPO)
    with begin() as session:
        planned = session.scalars(
            select(StargazerRun.planned_pages).order_by(StargazerRun.run_id)
        ).all()
        stages = session.scalars(select(StageRun.stage).where(StageRun.status == "succeeded")).all()
    assert planned[-1] == 15 - killed_at
    assert sorted(stages) == ["pages", "plan", "plan", "targets", "targets"]


def stored_pages() -> int:
    with begin() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(StargazerPage)
                .where(StargazerPage.stored_at.is_not(None))
            )
            or 0
        )


def test_cli_options_are_for_stargazers_only(app_env, sqlite_url, capsys) -> None:
    app_env(sqlite_url)
    assert cli_main(["run", "github_top", "--rate", "5"]) == 2
    assert "--rate only apply to stargazers" in capsys.readouterr().err
    assert cli_main(["run", "stargazers", "--no-wait"]) == 2
    assert "needs BROKER_URL" in capsys.readouterr().err
