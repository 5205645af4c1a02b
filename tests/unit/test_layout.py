"""A layout a stranger can read: no module name twice in the kit, nor beside the
application's, so `records` or `store` always means one thing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = ("actors", "pipelines", "db", "web", "githubsim")
# Names a framework gives (Alembic's env.py and folders, Jinja's), not ours to choose.
CONVENTIONS = {"env", "migrations", "versions", "templates", "static", "__pycache__"}


def names(package: Path) -> list[str]:
    """Every module and subpackage name under `package`, migration revisions aside."""
    found = []
    for path in package.rglob("*"):
        if "versions" in path.parts or path.name == "__init__.py":
            continue
        if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()):
            found.append(path.stem)
    return [name for name in found if name not in CONVENTIONS]


def test_no_kit_module_name_is_used_twice() -> None:
    counts = Counter(names(ROOT / "taskpipes"))

    assert [name for name, n in counts.items() if n > 1] == []


def test_no_kit_module_shares_a_name_with_the_application() -> None:
    application = set(APPLICATION)
    for package in APPLICATION:
        application |= set(names(ROOT / package))

    assert sorted(set(names(ROOT / "taskpipes")) & application) == []
