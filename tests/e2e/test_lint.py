"""The code stays as the house style asks: ruff-clean, formatted, mypy-clean, and layered as
the import-linter contracts in pyproject.toml say."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"], ["lint-imports"]],
    ids=["ruff-check", "ruff-format", "mypy", "import-contracts"],
)
def test_the_tree_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_taskpipes_module_is_either_kit_or_tool() -> None:
    """The kit contract lists the kit's modules; everything else in taskpipes must be a
    tool the contract forbids the kit to import. A new module is one or the other."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    kit_contract = contracts["contracts"][0]
    kit, tools = set(kit_contract["source_modules"]), set(kit_contract["forbidden_modules"])
    package = ROOT / "taskpipes"
    modules = {
        "taskpipes." + (path.stem if path.is_file() else path.name)
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }

    assert modules - kit - tools == set()
    assert modules & kit & tools == set()
