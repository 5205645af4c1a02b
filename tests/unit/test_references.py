"""Docstrings and comments name files and kit modules that exist: a move that leaves a
stale `pipelines/status.py` or `taskpipes.Base` behind fails here, not in a reader's hands."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
# The kit and the application, whose text names each other's files.
SOURCES = ("taskpipes", "pipelines", "actors", "web", "db", "githubsim")
# A path relative to the checkout, e.g. deploy/generate.py (not a URL's or a file's tail).
FILE = re.compile(r"(?<![\w./:-])((?:[a-z_]+/)+[a-z_0-9]+\.py)\b")
# A dotted name in the kit, e.g. taskpipes.observe.report.FRESH_PERIODS.
DOTTED = re.compile(r"(?<![\w./:-])(taskpipes(?:\.[A-Za-z_]\w*)+)")


def _resolves(dotted: str) -> bool:
    """True when `dotted` is a kit module, or an attribute chain on the longest one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: ModuleType | object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def _sources() -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(ROOT)), path.read_text())
        for folder in SOURCES
        for path in sorted((ROOT / folder).rglob("*.py"))
    ]


def test_named_files_exist() -> None:
    missing = [
        f"{name}: {found}"
        for name, text in _sources()
        for found in FILE.findall(text)
        if not (ROOT / found).exists()
    ]
    assert missing == []


def test_named_kit_modules_and_attributes_exist() -> None:
    missing = [
        f"{name}: {found}"
        for name, text in _sources()
        for found in set(DOTTED.findall(text))
        if not _resolves(found)
    ]
    assert missing == []
