"""requirements.lock: the image's dependencies pinned with hashes (`make lock`).

The lock must stay inside pyproject.toml's ranges (a range changed without `make lock`
would otherwise ship the old pins), pin every package with a hash, and be what the
Dockerfile installs, with --require-hashes.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
# The image's interpreter (Dockerfile: FROM python:3.11-slim) on Linux.
IMAGE_ENVIRONMENT = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def locked_entries(text: str) -> list[tuple[Requirement, list[str]]]:
    """(requirement, its hashes) for every entry: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    entries = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        hashes = re.findall(r"--hash=(\S+)", line)
        entries.append((Requirement(re.sub(r"\s*--hash=\S+", "", line).strip()), hashes))
    return entries


def pins_for_image(text: str) -> dict[str, Version]:
    """The version each package gets in the image (entries whose marker holds there)."""
    pins = {}
    for requirement, _ in locked_entries(text):
        if requirement.marker is None or requirement.marker.evaluate(IMAGE_ENVIRONMENT):
            [spec] = requirement.specifier
            pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def declared_requirements() -> list[Requirement]:
    """What pyproject.toml asks for in the image: the runtime set and the build backend."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = project["project"]["dependencies"] + project["build-system"]["requires"]
    return [Requirement(text) for text in declared]


def unsatisfied(declared: list[Requirement], pins: dict[str, Version]) -> list[str]:
    problems = []
    for requirement in declared:
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not in the lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement.name}=={pinned} is outside {requirement.specifier}")
    return problems


def test_the_lock_satisfies_every_range_of_pyproject() -> None:
    pins = pins_for_image(LOCK.read_text())
    assert unsatisfied(declared_requirements(), pins) == []
    # dramatiq[rabbitmq]'s extra is locked too
    assert "pika" in pins


def test_a_pin_outside_a_range_is_caught() -> None:
    # The check itself can fail: a lock older than a raised lower bound
    pins = {"sqlalchemy": Version("1.4.54")}
    assert unsatisfied([Requirement("SQLAlchemy>=2.0,<2.2")], pins) == [
        "SQLAlchemy==1.4.54 is outside <2.2,>=2.0"
    ]
    assert unsatisfied([Requirement("jinja2>=3.1")], pins) == ["jinja2 is not in the lock"]


def test_every_entry_is_pinned_with_hashes() -> None:
    entries = locked_entries(LOCK.read_text())
    assert len(entries) > 20
    for requirement, hashes in entries:
        [spec] = requirement.specifier
        assert spec.operator == "==", requirement
        assert hashes and all(h.startswith("sha256:") for h in hashes), requirement.name


def test_the_image_installs_the_lock_with_hashes_required() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"^RUN pip install (.+)$", dockerfile, re.MULTILINE)
    assert installs[0] == "--require-hashes --no-deps -r requirements.lock"
    # The project itself adds nothing the lock did not pin, and builds with the locked backend
    assert all("--no-deps" in flags for flags in installs)
    assert "--no-build-isolation" in installs[-1]
    assert re.search(r"^COPY requirements\.lock \./$", dockerfile, re.MULTILINE)
