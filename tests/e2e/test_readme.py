"""The tutorial (docs/tutorial.md, "Use taskpipes in your web app"): its code is run exactly
as shown, and the README's one pipeline is the tutorial's.

The tutorial's Python blocks become the new pipeline's module and the catalog's declare
line; its shell lines run, in that order, in a fresh directory (so on its own SQLite file,
with the in-process broker), in a process where the catalog line has been executed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from sqlalchemy import create_engine, select

import pipelines.catalog  # noqa: F401  (declares the flagship's pipelines)
from taskpipes import registry
from taskpipes.store.tables import Run

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
# Runs one tutorial shell line after executing the catalog block: `taskpipes ARGS` through the
# CLI's own entry point, `python SCRIPT ARGS` as the script's __main__.
DRIVER = """
import runpy, sys
import pipelines.catalog as catalog
import {module}
exec(open(sys.argv[1]).read(), {{**vars(catalog), **vars({module})}})
command, *args = sys.argv[2:]
if command == "taskpipes":
    from taskpipes.cli.main import main
    sys.exit(main(args))
sys.argv = args
runpy.run_path(args[0], run_name="__main__")
"""


def blocks(language: str, page: Path = TUTORIAL) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", page.read_text(), re.MULTILINE | re.DOTALL)


def readme_example(tmp_path: Path) -> tuple[str, Path, list[str]]:
    """(module name, catalog block file, shell lines) laid out under tmp_path."""
    module_block, catalog_block = blocks("python")
    module_path = module_block.splitlines()[0].removeprefix("# ").strip()
    assert catalog_block.splitlines()[0] == "# pipelines/catalog.py"
    module = Path(module_path).stem
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / f"{module}.py").write_text(module_block)
    (tmp_path / "code" / "catalog_line.py").write_text(catalog_block)
    (tmp_path / "code" / "driver.py").write_text(DRIVER.format(module=module))
    [shell] = blocks("sh")
    return module, tmp_path / "code" / "catalog_line.py", shell.strip().splitlines()


def test_the_readme_pipeline_runs_as_shown(tmp_path: Path) -> None:
    # Given the tutorial's module and catalog line, and a working directory with the deploy
    # generator (and nothing else: its database is the default SQLite file there)
    module, catalog_line, lines = readme_example(tmp_path)
    work = tmp_path / "work"
    shutil.copytree(ROOT / "deploy", work / "deploy")
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "DATABASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "code"), str(ROOT)])

    # When each of its shell lines runs in turn
    outputs = []
    for line in lines:
        result = subprocess.run(
            [sys.executable, str(tmp_path / "code" / "driver.py"), str(catalog_line), *line.split()],
            cwd=work, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)

    # Then the catalog line shown adds the new pipeline to pipelines the flagship declares
    # (read from its declarations: a pipeline added to the flagship breaks nothing here)
    [shown] = re.findall(r"^registry\.declare\((.*)\)$", catalog_line.read_text(), re.MULTILINE)
    *others, added = (name.strip() for name in shown.split(","))
    assert added == module
    assert set(others) <= {pipeline.name for pipeline in registry.declared}
    # and the tick ran its stage and recorded what it counted
    run_output = next(out for line, out in zip(lines, outputs, strict=True) if " run " in line)
    assert "succeeded" in run_output and "count" in run_output
    engine = create_engine(f"sqlite:///{work / 'taskpipes.db'}")
    with engine.connect() as conn:
        details = conn.scalar(select(Run.details).where(Run.pipeline == module))
    engine.dispose()
    assert details == {"snapshots": 0, "tick": "2026-12-01T12:00:00+00:00"}
    # and its status line is there, and the generator gave it its own stale clause
    status = next(out for line, out in zip(lines, outputs, strict=True) if "status" in line)
    assert module in status
    rules = yaml.safe_load((work / "deploy" / "prometheus" / "alerts.yml").read_text())
    exprs = [
        r["expr"] for g in rules["groups"] for r in g["rules"] if r["alert"] == "PipelineStale"
    ]
    assert f'{{pipeline="{module}"}}) > 2 * 3600' in exprs[0]
    overview = json.loads(
        (work / "deploy" / "grafana" / "dashboards" / "overview.json").read_text()
    )
    assert f'"pipeline", "{module}"' in overview["panels"][0]["targets"][0]["expr"]


def test_the_readme_shows_the_tutorial_pipeline() -> None:
    """The README's tour shows one pipeline: the tutorial's, which the test above runs."""
    [readme_pipeline] = blocks("python", ROOT / "README.md")
    module_block = blocks("python")[0]

    assert readme_pipeline == module_block
