"""The documentation site builds in strict mode: a broken link or anchor, a page left out
of the navigation, or an API reference that no longer resolves fails it. `make check`
builds it too; this runs it under `make test`, which is what CI runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--quiet", "-d", str(tmp_path / "site")],
        cwd=ROOT, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    # and the API reference was rendered from the docstrings, not left as a directive
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "::: taskpipes" not in api
    assert "A pipeline declaration." in api
