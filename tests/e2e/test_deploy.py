"""The deployment files: Compose file, Prometheus config and alerts, Grafana dashboards.

Tools (check-jsonschema, promtool) are required under CI=true; locally a missing tool that
cannot be installed skips its tests.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from pipelines import github_metrics
from pipelines.github_deploy import extras
from taskpipes import Pipeline, deploy, registry
from taskpipes.observe import metrics
from tests.services import unavailable
from tests.tools import require_debian_package

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
DATASOURCE_UID = "taskpipes-prometheus"
# Environment keys whose values are secrets and must come from deploy/.env.
SECRET_KEY = re.compile(r"PASS|TOKEN|SECRET", re.IGNORECASE)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_debian_package("promtool", "prometheus")


@pytest.fixture(scope="session")
def check_jsonschema() -> str:
    found = shutil.which("check-jsonschema") or shutil.which(
        "check-jsonschema", path=str(Path(sys.executable).parent)
    )
    if found is None:
        unavailable("check-jsonschema missing: pip install -e '.[test]'")
    return found


def run(*command: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"


# --- Image ---------------------------------------------------------------------------


def test_the_image_context_builds_a_wheel_of_the_kit_alone(tmp_path: Path) -> None:
    # Given only what the Dockerfile copies into the image
    context = tmp_path / "context"
    context.mkdir()
    dockerfile = (ROOT / "Dockerfile").read_text()
    sources = [
        s for line in re.findall(r"^COPY (.+) \S+$", dockerfile, re.MULTILINE) for s in line.split()
    ]
    for source in sources:
        if (ROOT / source).is_dir():
            shutil.copytree(
                ROOT / source, context / source, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(ROOT / source, context / source)

    # When pip builds the project from it (offline: the test venv has the build backend)
    built = tmp_path / "wheel"
    wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    result = run(*wheel, "-w", str(built), str(context))
    assert_ok(result)

    # Then the wheel holds the kit alone, with every file the kit opens at run time, and
    # the build says nothing of folders shadowing the package
    [archive] = built.glob("taskpipes-*.whl")
    names = set(zipfile.ZipFile(archive).namelist())
    tops = {name.split("/")[0] for name in names if not name.startswith("taskpipes-")}
    assert tops == {"taskpipes"}
    # (the kit's data files: the alert rules, the pages' templates and stylesheet; and its
    # migrations, Python files no package imports)
    needed = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "taskpipes").rglob("*.*")
        if path.suffix in (".yml", ".html", ".css")
    ]
    assert "taskpipes/http/templates/base.html" in needed
    needed += [
        "taskpipes/store/migrations/env.py",
        "taskpipes/store/migrations/versions/taskpipes_0001_kit_tables.py",
        "taskpipes/store/new_history/env.py.txt",
        "taskpipes/store/new_history/script.py.mako",
    ]
    assert not [name for name in needed if name not in names]
    assert any(name.endswith("entry_points.txt") for name in names)
    assert "take precedence during imports" not in result.stdout + result.stderr
    # And the application the image runs is copied beside it, from the checkout
    assert {"actors", "pipelines", "db", "web", "githubsim"} <= set(sources)


# --- Compose -------------------------------------------------------------------------


def test_compose_matches_compose_spec(check_jsonschema: str) -> None:
    assert_ok(run(check_jsonschema, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)))


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_without_comments() -> str:
    lines = COMPOSE.read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def test_compose_has_every_service() -> None:
    services = compose()["services"]

    assert set(services) >= {
        "rabbitmq",
        "postgres",
        "prometheus",
        "grafana",
        "migrate",
        "worker",
        "scheduler",
        "api",
    }
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["scheduler"]["environment"]["TZ"] == "UTC"
    for name in ("worker", "scheduler", "api"):
        env = services[name]["environment"]
        assert env["PROMETHEUS_MULTIPROC_DIR"] == env["dramatiq_prom_db"]
        assert any(env["PROMETHEUS_MULTIPROC_DIR"] in mount for mount in services[name]["tmpfs"])
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def test_compose_has_no_default_passwords() -> None:
    text = compose_without_comments()

    # Given every environment entry of every service
    for service in compose()["services"].values():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            # Then a secret is a required interpolation, never a literal or a default
            if SECRET_KEY.search(key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), f"{key}={value}"
            # and credentials inside URLs are interpolated too
            for password in re.findall(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]+)@", value):
                assert password.startswith("${") and ":?" in password, f"{key}={value}"
    defaults = re.findall(r"\$\{(\w+):?-", text)
    assert not [name for name in defaults if SECRET_KEY.search(name)]


def test_env_example_lists_every_variable() -> None:
    used = set(re.findall(r"\$\{(\w+)", compose_without_comments()))
    example = (DEPLOY / ".env.example").read_text()
    listed = set(re.findall(r"^(\w+)=", example, re.MULTILINE))

    assert used - listed == set()
    # A secret is listed empty: Compose refuses to start until someone fills it in.
    for name in listed:
        if SECRET_KEY.search(name):
            assert re.search(rf"^{name}=$", example, re.MULTILINE), name


# --- Prometheus ----------------------------------------------------------------------


def test_prometheus_config_is_valid(promtool: str) -> None:
    assert_ok(run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml")))


def test_prometheus_scrapes_every_job() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())

    jobs = {job["job_name"] for job in config["scrape_configs"]}

    assert {"worker", "scheduler", "api"} <= jobs
    assert config["rule_files"] == ["alerts.yml"]


def test_alert_rules_are_valid(promtool: str) -> None:
    assert_ok(run(promtool, "check", "rules", str(PROMETHEUS / "alerts.yml")))


def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    assert_ok(run(promtool, "test", "rules", str(PROMETHEUS / "tests" / "alerts_test.yml")))


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    cases = yaml.safe_load((PROMETHEUS / "tests" / "alerts_test.yml").read_text())
    checks = [check for test in cases["tests"] for check in test.get("alert_rule_test", [])]

    firing = {check["alertname"] for check in checks if check["exp_alerts"]}
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}

    assert alerts == {
        "PipelineStale",
        "PipelinePausedLong",
        "PipelineFailing",
        "DeadLettersPresent",
        "GitHubRateLimitLow",
        "SchedulerDown",
        "WorkersDown",
        "DuplicateTicksHigh",
    }
    assert alerts - firing == set()
    assert alerts - quiet == set()


# --- Grafana -------------------------------------------------------------------------


def dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARDS.glob("*.json")}


def panels(board: dict) -> list[dict]:
    """Every panel, including those nested in collapsed rows."""
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def test_committed_alerts_and_dashboards_are_what_the_declarations_generate() -> None:
    # Given the deployment files generated from the declared pipelines
    generated = deploy.generate(declared(), extras())

    # Then every committed file holds exactly that text
    for name, text in generated.items():
        committed = (DEPLOY / name).read_text()
        assert committed == text, f"run python deploy/generate.py (deploy/{name})"
    assert set(generated) >= {
        "prometheus/alerts.yml",
        "prometheus/tests/alerts_test.yml",
        "grafana/dashboards/overview.json",
        "grafana/dashboards/pipeline.json",
    }


def declared() -> list[Pipeline]:
    """The application's declarations, as deploy/generate.py hands them to the kit."""
    import pipelines.catalog  # noqa: F401

    return registry.declared


def test_the_kit_generates_nothing_of_the_application() -> None:
    # Given the files generated without the application's extras, and with them
    alone = deploy.generate(declared())
    full = deploy.generate(declared(), extras())

    # Then GitHub's metrics and alert appear only with the application's extras
    assert not [name for name, text in alone.items() if "taskpipes_github_" in text]
    assert "alert: GitHubRateLimitLow" in full["prometheus/alerts.yml"]
    assert "alertname: GitHubRateLimitLow" in full["prometheus/tests/alerts_test.yml"]
    overview = json.loads(full["grafana/dashboards/overview.json"])
    assert [panel["title"] for panel in panels(overview) if "GitHub" in panel["title"]] == [
        "GitHub rate limit remaining",
        "GitHub rate limit: time until reset",
        "GitHub requests by endpoint and code",
    ]


def test_the_generate_script_checks_the_declarations_as_declared() -> None:
    # An environment that overrides a schedule changes what runs, not the deployment files
    env = {**os.environ, "TASKPIPES_SCHEDULE_ROLLUP": "*/5 * * * *"}

    result = subprocess.run(
        [sys.executable, str(DEPLOY / "generate.py"), "--check"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert_ok(result)


def taskpipes_generate(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "taskpipes"), "generate", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_taskpipes_generate_writes_what_the_generate_script_writes(tmp_path: Path) -> None:
    """`taskpipes generate` (any application's command) and deploy/generate.py (the
    flagship's script) agree: the application's extras come from its `Application`."""
    assert_ok(taskpipes_generate("--check", "deploy"))
    written = taskpipes_generate(str(tmp_path))
    assert_ok(written)
    assert sorted(written.stdout.splitlines()) == sorted(
        f"wrote {tmp_path / name}" for name in deploy.generate(declared(), extras())
    )

    # A file edited by hand is named by --check
    edited = tmp_path / "prometheus" / "alerts.yml"
    edited.write_text(edited.read_text() + "# by hand\n")
    stale = taskpipes_generate("--check", str(tmp_path))
    assert (stale.returncode, stale.stdout) == (
        1, f"{edited} differs from the declarations: run taskpipes generate\n"
    )  # fmt: skip


def test_generate_check_names_a_stale_file(tmp_path: Path) -> None:
    # Given a copy of the deployment files with one dashboard edited by hand
    pipelines, added = declared(), extras()
    deploy.write(tmp_path, pipelines, added)
    edited = tmp_path / "grafana" / "dashboards" / "overview.json"
    edited.write_text(edited.read_text().replace("Dead letters", "Dead letterz"))

    # Then the check names it, and only it, and writing repairs it
    assert deploy.outdated(tmp_path, pipelines, added) == ["grafana/dashboards/overview.json"]
    assert deploy.main(tmp_path, pipelines, ["--check"], added) == 1
    assert deploy.write(tmp_path, pipelines, added) == ["grafana/dashboards/overview.json"]
    assert deploy.main(tmp_path, pipelines, ["--check"], added) == 0


def test_dashboards_have_their_titles() -> None:
    titles = {board["title"] for board in dashboards().values()}

    assert {"taskpipes / Overview", "taskpipes / Pipeline"} <= titles


@pytest.mark.parametrize("name", ["overview.json", "pipeline.json"])
def test_dashboard_structure(name: str) -> None:
    board = dashboards()[name]
    defined = {variable["name"] for variable in board["templating"]["list"]}

    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"], panel["title"]
            assert target["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
            used = set(re.findall(r"\$\{?(\w+)", target["expr"] + target.get("legendFormat", "")))
            builtin = {name for name in used if name.startswith("__")}
            assert used - builtin <= defined, panel["title"]


def test_pipeline_dashboard_has_pipeline_variable() -> None:
    variables = dashboards()["pipeline.json"]["templating"]["list"]

    [variable] = [v for v in variables if v["name"] == "pipeline"]

    assert variable["query"] == "label_values(taskpipes_pipeline_runs_total, pipeline)"
    assert variable["datasource"]["uid"] == DATASOURCE_UID


def test_datasource_uid_is_fixed() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    [source] = yaml.safe_load(provisioning.read_text())["datasources"]

    assert source["uid"] == DATASOURCE_UID


def test_dashboard_queries_parse(promtool: str, tmp_path: Path) -> None:
    # Given every panel query as a recording rule, with the template variable filled in
    rules = [
        {
            "record": f"dashboard:{name.removesuffix('.json')}_{panel['id']}:{target['refId']}",
            "expr": target["expr"].replace("$pipeline", "github_top"),
        }
        for name, board in dashboards().items()
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]
    rule_file = tmp_path / "dashboard_rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))

    # Then promtool parses them all
    assert_ok(run(promtool, "check", "rules", str(rule_file)))


# --- Metrics -------------------------------------------------------------------------

# Calls every public recording function of taskpipes.observe.metrics and of the GitHub
# application's pipelines.github_metrics once, then prints the multiprocess exposition.
EXERCISE_METRICS = """
import sys
from pipelines import github_metrics as g
from taskpipes.observe import metrics as m

m.run_finished("github_top", "succeeded", 1_700_000_000.0, 1_700_000_030.0)
m.run_finished("rollup", "failed", 1_700_000_000.0, 1_700_000_030.0)
m.stage_attempt("github_top", "fetch", 0.25, None)
m.stage_attempt("github_top", "store", 1.5, "OperationalError")
m.rows_written("repo_snapshots", 100)
m.duplicate_tick("github_top")
g.github_request("search", 200)
g.github_ratelimit("search", 29, 1_700_000_060.0)
g.github_rank_inversions(3)
m.queue_depth("github_top", "dead", 2)
m.api_request("/healthz", 200, 0.002)
m.tick_scheduled("github_top_tick")
m.tick_skipped("github_top", "overlap")
m.paused_since("rollup", 1_700_000_000.0)
sys.stdout.buffer.write(m.metrics_text())
"""
EXERCISED = {
    "run_finished",
    "stage_attempt",
    "rows_written",
    "duplicate_tick",
    "queue_depth",
    "api_request",
    "tick_scheduled",
    "tick_skipped",
    "paused_since",
}
EXERCISED_GITHUB = {"github_request", "github_ratelimit", "github_rank_inversions"}
METRIC_NAMES = [
    "taskpipes_pipeline_runs_total",
    "taskpipes_pipeline_last_success_timestamp_seconds",
    "taskpipes_pipeline_tick_lag_seconds_bucket",
    "taskpipes_stage_duration_seconds_bucket",
    "taskpipes_stage_failures_total",
    "taskpipes_rows_written_total",
    "taskpipes_duplicate_ticks_total",
    "taskpipes_github_requests_total",
    "taskpipes_github_ratelimit_remaining",
    "taskpipes_github_ratelimit_reset_timestamp_seconds",
    "taskpipes_github_rank_inversions",
    "taskpipes_queue_messages",
    "taskpipes_api_request_duration_seconds_bucket",
    "taskpipes_ticks_skipped_total",
    "taskpipes_pipeline_paused_since_timestamp_seconds",
]


def public_functions(module: ModuleType) -> set[str]:
    return {
        name
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_") and function.__module__ == module.__name__
    }


def test_exercise_covers_every_public_function() -> None:
    kit = public_functions(metrics) - {"metrics_text", "wipe_stale_files", "serve_metrics"}

    assert kit == EXERCISED
    assert public_functions(github_metrics) == EXERCISED_GITHUB


def test_multiprocess_metrics_pass_promtool(promtool: str, tmp_path: Path) -> None:
    # Given a fresh multiprocess directory, set before the process starts
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    # When a process records every metric and renders them
    result = subprocess.run(
        [sys.executable, "-c", EXERCISE_METRICS], env=env, capture_output=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout

    # Then the exposition is read back from the directory and passes promtool's lint
    assert list(tmp_path.glob("*.db"))
    for name in METRIC_NAMES:
        assert f"\n{name}{{".encode() in text or f"\n{name} ".encode() in text, name
    assert_ok(run(promtool, "check", "metrics", stdin=text))


def test_wipe_stale_files_removes_only_dead_processes_files(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / f"counter_{dead.stdout.strip()}.db").write_bytes(b"x")
    (tmp_path / f"counter_{os.getpid()}.db").write_bytes(b"x")
    (tmp_path / "keep.txt").write_text("x")

    metrics.wipe_stale_files(tmp_path)

    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f"counter_{os.getpid()}.db",
        "keep.txt",
    ]


def test_metrics_text_without_multiprocess_uses_default_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    assert b"python_info" in metrics.metrics_text()
