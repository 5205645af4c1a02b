"""The one clock: `taskpipes.declare.clock.now` is the only wall-clock reading in the kit and
the application, and it follows time-machine, so a test that moves time moves all of it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import time_machine

from taskpipes.declare import clock
from taskpipes.store import runs

ROOT = Path(__file__).resolve().parents[2]
# Where the kit and the application live; githubsim/ keeps its own simulated clock.
SOURCES = ("taskpipes", "pipelines", "actors", "web", "db")
# Readings of the wall clock other than clock.now().
OTHER_CLOCKS = re.compile(r"datetime\.(now|utcnow|today)\(|\btime\.time\(\)|\butcnow\(\)")
# The clock itself; stages.py is being edited on another branch and still calls runs.utcnow
# (the same function) and datetime.now once: empty this once that branch lands.
ALLOWED = {"taskpipes/declare/clock.py", "taskpipes/runtime/stages.py"}


def test_now_is_aware_utc_and_follows_a_moved_clock() -> None:
    moment = datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    with time_machine.travel(moment, tick=False):
        assert clock.now() == moment
        assert clock.now().tzinfo is UTC


def test_the_run_records_read_the_same_clock() -> None:
    assert runs.utcnow is clock.now


def test_nothing_else_reads_the_wall_clock() -> None:
    readings = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in SOURCES
        for path in sorted((ROOT / folder).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in ALLOWED
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if OTHER_CLOCKS.search(line)
    ]
    assert readings == []
