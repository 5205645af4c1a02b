"""Command-line tools the tests need, installed on demand from Debian packages."""

from __future__ import annotations

import os
import shutil
import subprocess


class ToolUnavailable(RuntimeError):
    """The tool is missing and could not be installed here."""


def ensure_debian_package(binary: str, package: str) -> str:
    """Return the path of `binary`, installing Debian `package` with apt-get if missing.

    Tries the install from the current package lists first and runs `apt-get update`
    only when that fails (stale or empty lists in a fresh container).
    """
    found = shutil.which(binary)
    if found:
        return found
    apt_get = _apt_get_command()
    install = [*apt_get, "install", "-y", "--no-install-recommends", package]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if _run(install, env) != 0:
        _run([*apt_get, "update"], env)
        _run(install, env)
    found = shutil.which(binary)
    if found is None:
        raise ToolUnavailable(f"`{binary}` missing and `apt-get install {package}` failed")
    return found


def _apt_get_command() -> list[str]:
    if shutil.which("apt-get") is None:
        raise ToolUnavailable("no apt-get: install the tool by hand")
    if os.geteuid() == 0:
        return ["apt-get"]
    if shutil.which("sudo"):
        return ["sudo", "-n", "apt-get"]
    raise ToolUnavailable("apt-get needs root and there is no sudo")


def _run(command: list[str], env: dict[str, str]) -> int:
    return subprocess.run(command, env=env, capture_output=True, timeout=600).returncode


def require_debian_package(binary: str, package: str) -> str:
    """`ensure_debian_package`, or the test is unavailable: a skip locally, a failure in CI."""
    from tests.services import unavailable

    try:
        return ensure_debian_package(binary, package)
    except ToolUnavailable as error:
        unavailable(str(error))
        raise
