"""The deployment files generated from the pipeline declarations: Prometheus alert rules
and their promtool cases, Grafana dashboards.

The kit never imports the application: the application hands its declarations in, and
what it adds for its own metrics (`Extras`): dashboard panels (built with
taskpipes.deploy.panels), which the overview shows after the pipelines' panels, and alert
rules with their promtool cases. deploy/generate.py does, and tests/e2e/test_deploy.py
checks that the committed files are what it generates.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from taskpipes.declare.pipeline import Pipeline
from taskpipes.deploy import alerts, dashboards
from taskpipes.deploy.cadence import Cadence
from taskpipes.deploy.panels import Panel

__all__ = ["Extras", "generate", "main", "outdated", "write"]


@dataclass(frozen=True)
class Extras:
    """What an application adds to the generated files for its own metrics.

    - `panels`: drawn on the overview dashboard after the pipelines' panels;
    - `rules`: alert rule groups, YAML items of alerts.yml's `groups:` list;
    - `rule_tests`: their `promtool test rules` cases, YAML items of `tests:`.
    """

    panels: Sequence[Panel] = ()
    rules: str = ""
    rule_tests: str = ""


NO_EXTRAS = Extras()


def generate(declared: Sequence[Pipeline], extras: Extras = NO_EXTRAS) -> dict[str, str]:
    """Path under deploy/ -> the text that file must hold."""
    pipelines = [Cadence.of(p) for p in declared]
    files = {
        "prometheus/alerts.yml": alerts.rules(pipelines, extras.rules),
        "prometheus/tests/alerts_test.yml": alerts.rule_tests(pipelines, extras.rule_tests),
    }
    for name, text in dashboards.render(pipelines, extras.panels).items():
        files[f"grafana/dashboards/{name}"] = text
    return files


def outdated(
    deploy_dir: Path, pipelines: Sequence[Pipeline], extras: Extras = NO_EXTRAS
) -> list[str]:
    """The generated files whose committed text differs from what the pipelines generate."""
    return [
        name
        for name, text in generate(pipelines, extras).items()
        if not (deploy_dir / name).is_file() or (deploy_dir / name).read_text() != text
    ]


def write(deploy_dir: Path, pipelines: Sequence[Pipeline], extras: Extras = NO_EXTRAS) -> list[str]:
    """Write the files that changed; returns their paths under deploy/."""
    changed = outdated(deploy_dir, pipelines, extras)
    for name, text in generate(pipelines, extras).items():
        if name in changed:
            (deploy_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (deploy_dir / name).write_text(text)
    return changed


def main(
    deploy_dir: Path,
    pipelines: Sequence[Pipeline],
    argv: Sequence[str],
    extras: Extras = NO_EXTRAS,
) -> int:
    """`generate.py [--check]`: write the files, or (--check) exit 1 naming stale ones."""
    if list(argv) == ["--check"]:
        stale = outdated(deploy_dir, pipelines, extras)
        for name in stale:
            print(f"deploy/{name} differs from the declarations: run deploy/generate.py")
        return 1 if stale else 0
    if argv:
        print("usage: generate.py [--check]", file=sys.stderr)
        return 2
    for name in write(deploy_dir, pipelines, extras):
        print(f"wrote deploy/{name}")
    return 0
