"""The reference pages name everything the code has: every public name, every environment
variable the settings read, every metric the kit defines, every command and option.

The code is found from the public package (`taskpipes.Settings`, the package's folder), not
by module path, so that moving a module does not break this test; a new setting, metric
or option without its line in docs/reference fails it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
from importlib.metadata import entry_points
from pathlib import Path

import taskpipes
from actors import application

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
PACKAGE = Path(taskpipes.__file__).parent
# An environment variable's name as the settings module quotes it: upper-case words joined
# by underscores (a prefix such as TASKPIPES_SCHEDULE_ included), or Dramatiq's lower-case one.
ENV_NAME = re.compile(r'"((?:[A-Z][A-Z0-9]*_)+[A-Z0-9]*|dramatiq_prom_db)"')
# A metric as the kit declares it (taskpipes.metrics.counter, ...) or prometheus_client would.
METRIC = re.compile(r'(?:Counter|Gauge|Histogram|counter|gauge|histogram)\(\s*"(taskpipes_\w+)"')


def page(name: str) -> str:
    return (REFERENCE / name).read_text()


def test_every_public_name_has_its_entry() -> None:
    api = page("api.md")
    missing = [
        name
        for name in taskpipes.__all__
        if f"::: taskpipes.{name}\n" not in api and f"`taskpipes.{name}`" not in api
    ]

    assert missing == []


def test_every_environment_variable_is_documented() -> None:
    source = Path(inspect.getsourcefile(taskpipes.Settings) or "").read_text()
    variables = set(ENV_NAME.findall(source))
    settings = page("settings.md")

    assert {"DATABASE_URL", "BROKER_URL", "TASKPIPES_SCHEDULE_"} <= variables
    assert sorted(v for v in variables if f"`{v}" not in settings) == []


def test_every_metric_is_documented() -> None:
    names = {name for path in PACKAGE.rglob("*.py") for name in METRIC.findall(path.read_text())}
    metrics = page("metrics.md")

    assert "taskpipes_pipeline_runs" in names
    assert sorted(n for n in names if not re.search(rf"`{n}(_total)?`", metrics)) == []


def commands(
    parser: argparse.ArgumentParser, prefix: str = "taskpipes"
) -> dict[str, argparse.ArgumentParser]:
    """Every command and nested action, by its full name, e.g. "taskpipes dlq replay"."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix} {name}"] = sub
                found.update(commands(sub, f"{prefix} {name}"))
    return found


def test_every_command_and_option_is_documented() -> None:
    """The kit's commands and those the flagship application adds to them."""
    script = entry_points(group="console_scripts")["taskpipes"]
    build_parser = importlib.import_module(script.module).build_parser
    cli = page("cli.md")
    undocumented = []
    top = build_parser(application)
    for name, parser in {"taskpipes": top, **commands(top)}.items():
        if name not in cli:
            undocumented.append(name)
        for action in parser._actions:
            options = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            undocumented += [f"{name} {o}" for o in options if f"`{o}" not in cli]

    assert undocumented == []


def test_the_readme_links_resolve() -> None:
    """The README is read on a forge, not built: its links into docs/ are checked here."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(((?!https?://)[^)#\s]+)", readme)

    assert any(t.startswith("docs/") for t in targets)
    assert [t for t in targets if not (ROOT / t).exists()] == []
