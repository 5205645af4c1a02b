"""The dashboards and alert rules against a real Prometheus scraping real taskpipes processes.

One scenario for the whole module: `dramatiq actors`, two `periodiq actors` (as Compose runs
two scheduler replicas, so duplicate ticks are real) and `taskpipes serve` work on
PostgreSQL and RabbitMQ: github_top succeeds twice, rollup once, one run fails on a
malformed GitHub answer, one run's fetch keeps hitting HTTP 500 until its message is
dead-lettered, and the API answers 200, 404 and 422. A Prometheus from Debian's package
scrapes all of them every second, with deploy/prometheus/alerts.yml loaded. Then every
panel query of every dashboard is evaluated through Prometheus's HTTP API, and promtool
checks the configuration and each live /metrics text.

The structure of the dashboards, and `promtool check config` / `check rules` of the files
in deploy/prometheus/, are tested in tests/e2e/test_deploy.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from db import schema as migrate
from githubsim import Simulator
from taskpipes.declare.schedule import floor_minute
from tests import services
from tests.e2e.test_deploy import PROMETHEUS, assert_ok, dashboards, panels, run
from tests.processes import (
    VENV_BIN,
    free_port,
    metric_sum,
    process,
    scheduler,
    scrape,
    service_env,
    taskpipes,
    workers,
)
from tests.queues import count, wait_until
from tests.tools import require_debian_package

# Setting up the scenario waits for wall-clock minute ticks: over pytest's default 300 s.
pytestmark = pytest.mark.timeout(600)

JOBS = ("worker", "scheduler", "api")
# Long enough for a scheduler minute tick and the queue reading after it; a bug fails.
TICK_DEADLINE_S = 150
# Prometheus scrapes every second; this is many scrapes.
SCRAPE_DEADLINE_S = 60
# What Grafana puts in place of its built-in variables (a 1 s scrape interval).
BUILTIN_VARIABLES = {"__rate_interval": "1m", "__interval": "1s", "__range": "5m"}
# The second round's runs, which share a tick and run at the same time.
SECOND = ("github_top", "rollup")
# The pipeline the Pipeline dashboard is looked at for.
PIPELINE = "github_top"
# The fallbacks a dashboard query ends with so that Grafana draws something before a metric
# exists (taskpipes/deploy/panels.py). Without them the query must still find data.
FALLBACK = re.compile(
    r'( or on\(\) vector\((0|NaN)\)| or label_replace\(vector\(Inf\), "pipeline", "\w+", "", ""\))+$'
)
# promtool lint findings on dramatiq's own metrics, which we cannot rename (see
# deploy/README.md): its message duration histogram counts milliseconds.
DRAMATIQ_LINT = (
    'dramatiq_message_duration_milliseconds use base unit "seconds" instead of "milliseconds"',
)


@dataclass(frozen=True)
class Scenario:
    prometheus: str
    config: Path
    endpoints: dict[str, list[int]]  # job -> ports of its /metrics


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    return {name: require_debian_package(name, "prometheus") for name in ("prometheus", "promtool")}


@pytest.fixture(scope="module")
def scenario(
    tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory, simulator_server: Simulator
) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("observability")
    with ExitStack() as stack:
        database = stack.enter_context(services.postgres_database())
        broker = stack.enter_context(services.rabbitmq_vhost())
        migrate.upgrade(database)
        simulator_server.reset()
        stack.callback(simulator_server.reset)
        base = {
            "DATABASE_URL": database,
            "BROKER_URL": broker,
            "GITHUB_API_URL": simulator_server.url,
            "TASKPIPES_SCHEDULE_GITHUB_TOP": "* * * * *",
            # retries back off from 10 ms: the transient failure dead-letters in under a second
            "TASKPIPES_RETRY_MIN_BACKOFF_MS": "10",
        }
        worker_env, api_env, cli_env, *scheduler_envs = (service_env(tmp, **base) for _ in range(5))
        api_port = free_port()
        endpoints = {
            "worker": [int(worker_env["dramatiq_prom_port"])],
            "scheduler": [int(env["TASKPIPES_METRICS_PORT"]) for env in scheduler_envs],
            "api": [api_port],
        }

        # Given a worker and the API, scraped by Prometheus from the start
        stack.enter_context(workers(worker_env, tmp / "workers.log", threads=4))
        serve = ["serve", "--host", "127.0.0.1", "--port", str(api_port)]
        stack.enter_context(
            process([str(VENV_BIN / "taskpipes"), *serve], api_env, tmp / "api.log")
        )
        config = write_prometheus_config(tmp, endpoints)
        prometheus = start_prometheus(stack, tools["prometheus"], config, tmp)
        wait_until(lambda: targets_up(prometheus, "worker", "api"), SCRAPE_DEADLINE_S, "targets")
        api = f"http://127.0.0.1:{api_port}"

        # When pipelines run and the API answers, twice, with scrapes in between (a rate or
        # a quantile needs a counter that moved while Prometheus watched)
        now = floor_minute(datetime.now(UTC))
        ticks = [now - timedelta(minutes=m) for m in (8, 6, 4, 2)]
        run_pipeline(cli_env, simulator_server, "github_top", ticks[0], "succeeded")
        ask_api(api)
        wait_until(
            lambda: (
                query(prometheus, "taskpipes_pipeline_runs_total")
                and query(
                    prometheus, 'taskpipes_api_request_duration_seconds_count{route="/api/top"}'
                )
            ),
            SCRAPE_DEADLINE_S,
            "the first run's and requests' samples",
        )
        with ThreadPoolExecutor(2) as pool:  # two runs of their own, at once, on one clock
            second = [
                pool.submit(run_pipeline, cli_env, simulator_server, p, ticks[1], "succeeded")
                for p in SECOND
            ]
            ask_api(api)
        for run in second:
            run.result()
        # a permanent failure: the run fails at once and Retries dead-letters its message
        simulator_server.add_fault("search", "malformed_json")
        run_pipeline(cli_env, simulator_server, "github_top", ticks[2], "failed")
        # a transient failure on every attempt: retries run out, then the dead letter
        simulator_server.add_fault("search", "server_error", times=6)
        run_pipeline(cli_env, simulator_server, "github_top", ticks[3], "failed")
        wait_until(lambda: count(broker, "github_top.XQ") == 2, 60, "two dead letters")

        # and two schedulers send the every-minute ticks (each is delivered twice)
        simulator_server.reset()
        for number, env in enumerate(scheduler_envs):
            stack.enter_context(scheduler(env, tmp / f"scheduler-{number}.log"))
        worker_port = endpoints["worker"][0]
        wait_until(
            lambda: (
                metric_sum(scrape(worker_port), "taskpipes_queue_messages", state="dead") >= 2
                and metric_sum(scrape(worker_port), "taskpipes_duplicate_ticks_total") > 0
            ),
            TICK_DEADLINE_S,
            "a scheduled tick's duplicate and the queue reading after the dead letters",
        )

        # Then Prometheus has every target up, and two samples of the newest counter (the
        # duplicates, from the schedulers' first tick): a rate needs two
        wait_until(lambda: targets_up(prometheus, *JOBS), SCRAPE_DEADLINE_S, "all targets up")
        wait_until(
            lambda: (
                query(prometheus, 'taskpipes_queue_messages{state="dead"} > 0')
                and query(prometheus, "count(rate(taskpipes_duplicate_ticks_total[1m]))")
                and query(prometheus, "count(rate(taskpipes_pipeline_runs_total[1m]))")
            ),
            SCRAPE_DEADLINE_S,
            "dead letters, duplicates and run rates in Prometheus",
        )
        yield Scenario(prometheus, config, endpoints)


def run_pipeline(
    env: dict[str, str], simulator: Simulator, pipeline: str, tick: datetime, status: str
) -> None:
    simulator.set_clock(tick)
    result = taskpipes(["run", pipeline, "--at", tick.isoformat(), "--timeout", "60"], env)
    first_line = result.stdout.partition("\n")[0]
    assert first_line.endswith(f": {status}"), result.stdout + result.stderr


def ask_api(base_url: str) -> None:
    """One request per answer the dashboards break down: 200, 404 and 422."""
    expected = {
        "/healthz": 200,
        "/api/top?limit=10": 200,
        "/api/repos/nobody/nothing/history": 404,
        "/api/top?limit=0": 422,
    }
    for path, code in expected.items():
        assert http_status(base_url + path) == code, path


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def write_prometheus_config(directory: Path, endpoints: dict[str, list[int]]) -> Path:
    """deploy/prometheus/prometheus.yml's jobs and rules, on loopback, scraped every second."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(PROMETHEUS / "alerts.yml")],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in ports]}],
            }
            for job, ports in endpoints.items()
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_prometheus(stack: ExitStack, binary: str, config: Path, directory: Path) -> str:
    """Start Prometheus on a free loopback port; returns its base URL once it is ready."""
    url = f"http://127.0.0.1:{free_port()}"
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'tsdb'}",
        f"--web.listen-address={url.removeprefix('http://')}",
    ]
    stack.enter_context(process(args, {}, directory / "prometheus.log"))
    wait_until(lambda: ready(url), SCRAPE_DEADLINE_S, "Prometheus to be ready")
    return url


def ready(url: str) -> bool:
    try:
        return http_status(url + "/-/ready") == 200
    except OSError:
        return False


def api_get(prometheus: str, path: str, **params: str) -> object:
    """The `data` of a Prometheus HTTP API answer, which must be a success."""
    url = f"{prometheus}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]


def query(prometheus: str, expr: str) -> list[dict]:
    """An instant query's samples; fails on anything but a vector."""
    data = api_get(prometheus, "query", query=expr)
    assert data["resultType"] == "vector", (expr, data)
    return data["result"]


def targets_up(prometheus: str, *jobs: str) -> bool:
    """Every target of every job in `jobs` is up, and each job has at least one."""
    active = api_get(prometheus, "targets", state="active")["activeTargets"]
    health = [(t["labels"]["job"], t["health"]) for t in active if t["labels"]["job"] in jobs]
    return {job for job, _ in health} == set(jobs) and all(h == "up" for _, h in health)


# --- every panel query ---------------------------------------------------------------


def panel_targets() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title and refId, query) for every target of every panel."""
    return [
        (name, f"{panel['title']} {target['refId']}", target["expr"])
        for name, board in sorted(dashboards().items())
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana's `$name` and `${name}` as Grafana would; an unknown name fails."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], expr)


def has_values(samples: list[dict]) -> bool:
    """At least one sample with a number Grafana can draw (NaN is a gap)."""
    return any(sample["value"][1] != "NaN" for sample in samples)


@pytest.mark.parametrize(
    ("dashboard", "target", "expr"),
    panel_targets(),
    ids=[f"{name}:{title}" for name, title, _ in panel_targets()],
)
def test_every_panel_query_returns_data(
    scenario: Scenario, dashboard: str, target: str, expr: str
) -> None:
    # Given the query as Grafana sends it, variables filled in
    promql = substitute(expr, BUILTIN_VARIABLES | {"pipeline": PIPELINE})

    # When Prometheus evaluates it, and again without the no-data fallback
    samples = query(scenario.prometheus, promql)
    core_samples = query(scenario.prometheus, FALLBACK.sub("", promql))

    # Then both return data: the panel shows what the scenario did, not only its fallback
    assert samples, promql
    assert has_values(core_samples), (FALLBACK.sub("", promql), core_samples)


def panel_query(dashboard: str, title: str) -> str:
    [expr] = [
        expr for name, target, expr in panel_targets() if (name, target) == (dashboard, title)
    ]
    return substitute(expr, BUILTIN_VARIABLES | {"pipeline": PIPELINE})


def by_label(samples: list[dict], label: str) -> dict[str, str]:
    return {sample["metric"].get(label, ""): sample["value"][1] for sample in samples}


def test_the_overview_headlines_show_what_the_scenario_did(scenario: Scenario) -> None:
    def headline(title: str, label: str) -> dict[str, str]:
        return by_label(query(scenario.prometheus, panel_query("overview.json", title)), label)

    freshness = headline("Freshness: time since last success A", "pipeline")
    assert freshness["maintenance"] == "+Inf"  # never ran: shown as stale, not left out
    assert 0 < float(freshness["github_top"]) < 600
    assert headline("Dead letters A", "") == {"": "2"}
    assert headline("Targets up A", "job") == {"worker": "1", "scheduler": "2", "api": "1"}


def test_the_pipeline_variable_lists_the_pipelines_that_ran(scenario: Scenario) -> None:
    [variable] = dashboards()["pipeline.json"]["templating"]["list"]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]).groups()

    # Grafana's label_values(metric, label) is this label-values request
    values = api_get(scenario.prometheus, f"label/{label}/values", **{"match[]": metric})

    assert {PIPELINE, "rollup"} <= set(values)


# --- alert rules ---------------------------------------------------------------------


def alert_states(prometheus: str) -> dict[str, tuple[str, str]]:
    """Alert name -> (rule health, state) as Prometheus evaluates the rules."""
    groups = api_get(prometheus, "rules", type="alert")["groups"]
    return {
        rule["name"]: (rule["health"], rule["state"]) for group in groups for rule in group["rules"]
    }


def test_alert_rules_evaluate_against_live_data(scenario: Scenario) -> None:
    # Given the rules of deploy/prometheus/alerts.yml, evaluated every second; the
    # schedulers serve no /metrics before their first tick, so SchedulerDown was pending
    # then, and clears at the first evaluation after they are scraped
    quiet = (
        "SchedulerDown",
        "WorkersDown",
        "PipelineStale",
        "PipelinePausedLong",
        "GitHubRateLimitLow",
    )

    def settled() -> bool:
        states = alert_states(scenario.prometheus)
        return states["DeadLettersPresent"][1] == "pending" and all(
            states[name][1] == "inactive" for name in quiet
        )

    # When the dead letters have been seen and every process is up
    try:
        wait_until(settled, SCRAPE_DEADLINE_S, "DeadLettersPresent pending, the rest quiet")
    except AssertionError as timeout:
        raise AssertionError(alert_states(scenario.prometheus)) from timeout

    # Then every rule evaluates cleanly
    states = alert_states(scenario.prometheus)
    assert len(states) == 8
    assert {name: health for name, (health, _) in states.items()} == dict.fromkeys(states, "ok")


# --- promtool ------------------------------------------------------------------------


def test_promtool_accepts_the_test_config(scenario: Scenario, tools: dict[str, str]) -> None:
    # `check config` also checks the rule files it names (deploy/prometheus/alerts.yml)
    assert_ok(run(tools["promtool"], "check", "config", str(scenario.config)))


@pytest.mark.parametrize("job", JOBS)
def test_every_live_exposition_passes_promtool_lint(
    scenario: Scenario, tools: dict[str, str], job: str
) -> None:
    for port in scenario.endpoints[job]:
        text = scrape(port)
        result = subprocess.run(
            [tools["promtool"], "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
        findings = [line for line in lines if line and line not in DRAMATIQ_LINT]
        assert findings == [], f"{job} :{port}\n" + "\n".join(findings)
        # promtool exits 3 for lint findings; only the ignored ones may have caused it
        assert result.returncode == 0 or set(lines) & set(DRAMATIQ_LINT), result.returncode
        assert "taskpipes_" in text, f"{job} :{port} exports no taskpipes metric"
