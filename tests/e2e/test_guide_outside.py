"""docs/use-in-your-web-app.md, followed as a stranger would: its files written and its
shell lines run exactly as shown, in a folder outside the checkout, in a fresh virtual
environment that holds the kit's wheel (built from this checkout) and nothing of the
checkout itself.

The kit's dependencies come from the project's environment through a .pth file, with no
download: a directory named in a .pth goes on the path without its own .pth files being
run, so the project's editable install of the kit stays unseen (checked: `taskpipes` is
the wheel's copy, and the flagship's `actors` cannot be imported). The database is the
guide's default SQLite file, the broker the in-process one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "use-in-your-web-app.md"
# A fenced block, with the file it is when it names one: ```python title="news/feeds.py"
FENCE = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```$', re.MULTILINE | re.DOTALL)
# A shell line that is meant to fail says so: `... # exit 2`.
EXPECTED_EXIT = re.compile(r"#\s*exit (\d+)\s*$")
# What the kit's build needs of the checkout (pyproject's readme, the package).
BUILD_SOURCES = ("pyproject.toml", "README.md", "taskpipes")
# Variables of the environment the guide's commands must not inherit from the test's.
NOT_INHERITED = re.compile(r"(DATABASE_URL|BROKER_URL|PYTHONPATH|VIRTUAL_ENV|TASKPIPES_.*|NEWS_.*)")
# How long one command, and the guide's background feed server's start, may take.
COMMAND_TIMEOUT_S = 120
SERVER_START_S = 10

pytestmark = pytest.mark.timeout(300)


def guide_blocks() -> list[tuple[str, str | None, str]]:
    """(language, file name or None, text) of each fenced block, in order."""
    return FENCE.findall(GUIDE.read_text())


def guide_files() -> dict[str, str]:
    return {title: text for _, title, text in guide_blocks() if title}


def guide_shell_lines() -> list[str]:
    return [
        line.strip()
        for language, _, text in guide_blocks()
        if language == "sh"
        for line in text.splitlines()
        if line.strip()
    ]


def shown_outputs() -> list[str]:
    """The text blocks right after a shell block: what those lines print, as the guide shows
    it (`...` stands for what differs between runs, and timings are any timing)."""
    blocks = guide_blocks()
    return [
        text
        for (before, _, _), (language, _, text) in zip(blocks, blocks[1:], strict=False)
        if before == "sh" and language == "text"
    ]


def as_pattern(shown: str) -> re.Pattern[str]:
    wildcards = {"...": ".*", "timing": r"\d+\.\d{3}s"}
    pieces = re.split(r"(\.\.\.|\d+\.\d{3}s)", shown)
    return re.compile(
        "".join(
            wildcards["..." if piece == "..." else "timing"] if i % 2 else re.escape(piece)
            for i, piece in enumerate(pieces)
        )
    )


def build_fresh_venv(work: Path) -> Path:
    """A new virtual environment with the kit's wheel installed; its directory."""
    source = work / "source"
    for name in BUILD_SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, source / name)
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    must(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(source)]
    )
    [wheel] = (work / "dist").glob("taskpipes-*.whl")
    venv = work / "venv"
    must([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    must([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)])
    site = Path(
        must(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).strip()
    )
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def outside_environment() -> dict[str, str]:
    """The test's environment without what points into the checkout or configures the kit
    (the suite's conftest puts the checkout on PYTHONPATH, where pip would find the
    checkout's own taskpipes.egg-info and call the wheel installed already)."""
    return {k: v for k, v in os.environ.items() if not NOT_INHERITED.fullmatch(k)}


def must(command: list[str], **kwargs: object) -> str:
    kwargs.setdefault("env", outside_environment())
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return str(result.stdout)


@dataclass
class Step:
    line: str
    expected_exit: int
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Shell:
    """Runs the guide's lines one by one as a terminal would: `export` lasts, `&` runs in
    the background (until `close`), anything else through bash, waited for."""

    cwd: Path
    env: dict[str, str]
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, line: str) -> Step:
        expected = EXPECTED_EXIT.search(line)
        step = Step(line, int(expected.group(1)) if expected else 0, 0, "", "")
        if exported := re.fullmatch(r"export (\w+)=(\S+)", line):
            self.env[exported[1]] = exported[2]
        elif line.endswith("&"):
            self.background.append(
                subprocess.Popen(
                    ["bash", "-c", line.removesuffix("&")],
                    cwd=self.cwd,
                    env=self.env,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )
        else:
            result = subprocess.run(
                ["bash", "-c", line], cwd=self.cwd, env=self.env,
                capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
            )  # fmt: skip
            step.exit_code, step.stdout, step.stderr = (
                result.returncode,
                result.stdout,
                result.stderr,
            )
        return step

    def wait_for(self, url: str) -> None:
        """Until `url` answers: the background server is up (or it died: fail)."""
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except OSError:
                dead = [p.args for p in self.background if p.poll() is not None]
                assert not dead and time.monotonic() < deadline, f"{url} never answered; {dead}"
                time.sleep(0.05)

    def close(self) -> None:
        for process in self.background:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


def table(database: Path, query: str) -> list[tuple[object, ...]]:
    if not database.exists():
        return []
    with sqlite3.connect(database) as connection:
        try:
            return connection.execute(query).fetchall()
        except sqlite3.OperationalError:  # the table is not there yet
            return []


@pytest.fixture(scope="module")
def kit_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fresh_venv(tmp_path_factory.mktemp("kit"))


@pytest.fixture
def stranger(kit_venv: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The stranger's application folder (empty) and the environment of its terminal."""
    venv = kit_venv
    app = tmp_path / "newsroom"
    app.mkdir()
    env = outside_environment()
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    return app, env


def test_the_wheel_alone_is_the_kit_the_stranger_gets(
    stranger: tuple[Path, dict[str, str]],
) -> None:
    app, env = stranger
    probe = (
        "import importlib.util, sys, taskpipes\n"
        "print(taskpipes.__file__)\n"
        "print(sys.prefix)\n"
        "print([m for m in ('actors', 'pipelines', 'db', 'web') if importlib.util.find_spec(m)])"
    )
    shown, prefix, flagship = must(["python", "-c", probe], cwd=app, env=env).splitlines()

    assert not app.is_relative_to(ROOT)
    assert Path(shown).is_relative_to(prefix) and not Path(shown).is_relative_to(ROOT)
    assert flagship == "[]"


def test_the_guide_runs_as_shown_outside_the_checkout(
    stranger: tuple[Path, dict[str, str]],
) -> None:
    # Given the stranger's folder holding the guide's files, as shown
    app, env = stranger
    for name, text in guide_files().items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    database = app / "taskpipes.db"
    items = "SELECT id, title, published, fetched_at, position FROM feed_items ORDER BY id"
    runs = "SELECT pipeline, tick, status FROM runs"

    # When each of its shell lines runs in turn, in that folder
    shell = Shell(app, env)
    steps, items_after, runs_after = [], [], []
    try:
        for line in guide_shell_lines():
            steps.append(shell.run(line))
            if line.endswith("&"):
                shell.wait_for(shell.env["NEWS_FEED_URL"])
            items_after.append(table(database, items))
            runs_after.append(table(database, runs))
    finally:
        shell.close()

    # Then every line ends as the guide says (0, or the exit its comment names)
    for step in steps:
        assert step.exit_code == step.expected_exit, f"{step}"
    by_line = {step.line: (i, step) for i, step in enumerate(steps)}
    # and the migration was generated into the folder the application names, and applied
    revision = next(s for s in steps if s.line.startswith("taskpipes db revision"))
    [written] = (app / "news" / "migrations" / "versions").glob("0001_*.py")
    assert "feed_items" in written.read_text() and written.name in revision.stdout
    # and the tick stored the feed's two recent items, newest first, the old one dropped
    first, rerun = (i for i, s in enumerate(steps) if s.line.startswith("taskpipes run"))
    assert [(row[0], row[4]) for row in items_after[first]] == [("news-2", 2), ("news-3", 1)]
    assert runs_after[first] == [("feed_items", "2026-12-01 12:05:00.000000", "succeeded")]
    assert "fetch      succeeded" in steps[first].stdout
    # and the same tick again changed nothing: the same rows, to the fetch time, one run
    assert "(already done: nothing changed)" in steps[rerun].stdout
    assert items_after[rerun] == items_after[first] and runs_after[rerun] == runs_after[first]
    # and status names the pipeline and its schedule; a bad setting stops it, named
    _, status = by_line["taskpipes status"]
    assert "feed_items (every 5m, queue feed_items)" in status.stdout
    bad = next(s for s in steps if s.line.startswith("NEWS_KEEP_DAYS=0"))
    assert "NEWS_KEEP_DAYS must be positive, got '0'" in bad.stderr
    # and the generated alert watches the pipeline at its own period, as the guide shows
    alerts = (app / "deploy" / "prometheus" / "alerts.yml").read_text()
    [stale] = [
        rule
        for group in yaml.safe_load(alerts)["groups"]
        for rule in group["rules"]
        if rule["alert"] == "PipelineStale"
    ]
    assert '{pipeline="feed_items"}) > 2 * 300' in stale["expr"]
    [shown] = [text for language, _, text in guide_blocks() if language == "yaml"]
    assert shown in alerts
    # and every output the guide shows is what its lines printed
    printed = "".join(step.stdout + step.stderr for step in steps)
    assert [shown for shown in shown_outputs() if not as_pattern(shown).search(printed)] == []
