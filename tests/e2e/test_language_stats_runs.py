"""language_stats end to end: `taskpipes run` on a SQLite file with the in-process broker,
and on PostgreSQL and RabbitMQ with `dramatiq actors` and `periodiq actors` processes; its
alert, dashboard, status line and catch-up come from its declaration alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import requests
import yaml
from sqlalchemy import create_engine, select

from pipelines.github_deploy import extras
from taskpipes import deploy
from taskpipes.runtime.runner import run_tick
from taskpipes.store.database import begin
from taskpipes.store.tables import Run
from tests.app import wait_for_run
from tests.clirun import run_cli
from tests.e2e.test_deploy import DASHBOARDS, PROMETHEUS, declared
from tests.handmade import at
from tests.integration.test_language_stats import TICK, served, stored_history
from tests.processes import scheduler, service_env, taskpipes, workers
from tests.queues import wait_until

# The totals of tests.integration.test_language_stats's history at its newest snapshot, as the API says.
EXPECTED = [
    {"rank": 1, "language": "Go", "repositories": 2, "stars": 900,
     "stars_gained_24h": 10, "stars_gained_7d": 100},
    {"rank": 2, "language": "Python", "repositories": 1, "stars": 200,
     "stars_gained_24h": 20, "stars_gained_7d": 100},
    {"rank": 3, "language": None, "repositories": 1, "stars": 55,
     "stars_gained_24h": 5, "stars_gained_7d": 15},
]  # fmt: skip
# Long enough for the scheduler's minute tick and the run after it; a bug fails.
DEADLINE_S = 200


def test_run_on_sqlite_with_the_in_process_broker(
    app_env, sqlite_url: str, api_server: str, tmp_path: Path
) -> None:
    # Given a week of snapshots, rolled up, in a SQLite file
    stored_history(app_env, sqlite_url)
    env = service_env(tmp_path, DATABASE_URL=sqlite_url)
    run = ["run", "language_stats", "--at", "2026-08-21T12:00Z"]

    # When the pipeline runs for 12:00 with the in-process broker, then again
    first, again = run_cli(run, env, tmp_path), run_cli(run, env, tmp_path)

    # Then it succeeded once, and the second run changed nothing
    assert first.returncode == 0, first.stdout + first.stderr
    assert "succeeded" in first.stdout and "languages" in first.stdout
    assert again.returncode == 0 and "already done" in again.stdout
    assert [row[1] for row in served()] == ["Go", "Python", None]
    # and the API serves the table with its as_of
    answer = requests.get(f"{api_server}/api/languages", timeout=10)
    assert answer.json() == {"as_of": "2026-08-21T12:00:00Z", "languages": EXPECTED}
    # and `taskpipes status` has its line, with its own period
    status = run_cli(["status", "--json"], env, tmp_path)
    [line] = [
        p for p in json.loads(status.stdout)["pipelines"] if p["pipeline"] == "language_stats"
    ]
    assert line["period_seconds"] == 1800
    assert line["last_success"]["tick"].startswith("2026-08-21T12:00")


def test_runs_on_postgres_and_rabbitmq_from_the_scheduler(
    app_env, postgres_url: str, rabbitmq: str, tmp_path: Path
) -> None:
    # Given the same history on PostgreSQL, and language_stats every minute
    stored_history(app_env, postgres_url)
    env = service_env(
        tmp_path,
        DATABASE_URL=postgres_url,
        BROKER_URL=rabbitmq,
        TASKPIPES_SCHEDULE_LANGUAGE_STATS="* * * * *",
    )
    engine = create_engine(postgres_url)
    started = datetime.now(UTC).replace(second=0, microsecond=0)

    def succeeded_tick() -> datetime | None:
        with engine.connect() as conn:
            return conn.scalar(
                select(Run.tick).where(
                    Run.pipeline == "language_stats", Run.status == "succeeded", Run.tick >= started
                )
            )

    # When `periodiq actors` sends its ticks to `dramatiq actors`
    with (
        workers(env, tmp_path / "workers.log"),
        scheduler(env, tmp_path / "scheduler.log"),
    ):
        tick = wait_until(succeeded_tick, DEADLINE_S, "a scheduled language_stats run")
        # and the same tick is asked for by hand through RabbitMQ
        again = taskpipes(["run", "language_stats", "--at", tick.isoformat()], env)
    engine.dispose()

    # Then the scheduled run served the newest snapshot's totals; the manual one did nothing
    assert again.returncode == 0 and "already done" in again.stdout, again.stdout
    rows = served()
    assert [row[1:] for row in rows] == [
        tuple(row[k] for k in ("language", "repositories", "stars", "stars_gained_24h",
                               "stars_gained_7d"))
        for row in EXPECTED
    ]  # fmt: skip


def test_its_declaration_alone_gives_it_an_alert_cases_and_a_dashboard_series() -> None:
    # Given the committed files, which test_deploy proves are what the declarations generate
    assert not deploy.outdated(PROMETHEUS.parent, declared(), extras())
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    [stale] = [r for g in rules["groups"] for r in g["rules"] if r["alert"] == "PipelineStale"]
    cases = yaml.safe_load((PROMETHEUS / "tests" / "alerts_test.yml").read_text())["tests"]
    overview = json.loads((DASHBOARDS / "overview.json").read_text())
    [fresh] = [p for p in overview["panels"] if p["title"].startswith("Freshness")]

    # Then language_stats is stale after two of its 30-minute periods
    clause = '{pipeline="language_stats"}) > 2 * 1800'
    assert clause in stale["expr"]
    # and promtool checks exactly that: quiet at 3600 s, firing 600 s later
    [case] = [c for c in cases if 'pipeline="language_stats"' in c["input_series"][0]["series"]]
    checks = [(c["eval_time"], [a["exp_labels"]["pipeline"] for a in c["exp_alerts"]])
              for c in case["alert_rule_test"]]  # fmt: skip
    assert checks == [("3600s", []), ("4200s", ["language_stats"])]
    # and its freshness shows (+Inf before its first success) orange after 30 min, red after 60
    assert '"pipeline", "language_stats"' in fresh["targets"][0]["expr"]
    [override] = [o for o in fresh["fieldConfig"]["overrides"]
                  if o["matcher"]["options"] == "language_stats"]  # fmt: skip
    steps = override["properties"][0]["value"]["steps"]
    assert [(s["value"], s["color"]) for s in steps] == [
        (None, "green"), (1800, "orange"), (3600, "red")
    ]  # fmt: skip


def test_the_catch_up_pass_covers_it(app_env, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    import actors  # noqa: F401  (the in-process broker, to which catch-up sends)
    from taskpipes import registry
    from taskpipes.runtime.catchup import catch_up_pipeline

    # Given language_stats ran its 12:00 tick, and nothing ran after it
    stored_history(app_env, sqlite_url)
    assert run_tick(registry.get("language_stats"), TICK, 60).status == "succeeded"

    # When the catch-up pass looks at 13:35
    planned = catch_up_pipeline(registry.get("language_stats"), at("2026-08-21 13:35"))

    # Then, by its `latest` policy, it sent the newest missed tick (which the in-process
    # workers run) and recorded the others as skipped
    assert planned == (1, 2)
    assert wait_for_run("language_stats", at("2026-08-21 13:30")).status == "succeeded"
    with begin() as session:
        ticks = session.execute(
            select(Run.tick, Run.status).where(Run.pipeline == "language_stats")
        ).all()
    assert {tick.strftime("%H:%M"): status for tick, status in ticks} == {
        "12:00": "succeeded", "12:30": "skipped", "13:00": "skipped", "13:30": "succeeded"
    }  # fmt: skip
