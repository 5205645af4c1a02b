"""Run periodiq or dramatiq with this process's wall clock shifted, for scheduler tests;
and the helpers that start them so and convert between the shifted clock and the real one.

`python -m tests.shifted_clock SECONDS PROGRAM ARGS...` runs PROGRAM's own entry point in
this process after time-machine has moved the wall clock SECONDS ahead (datetime.now,
time.time, hence pendulum.now, which periodiq schedules by). The clock then runs on at the
real pace; monotonic clocks, sleeps and periodiq's alarm() are untouched, and the worker
processes dramatiq forks inherit the shift. A test uses it to stand a few seconds before a
minute's end, instead of waiting for the wall clock to get there: every process of one
test shares one offset, so they agree on the time as production's processes do.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine

from tests.processes import VENV_BIN, process, worker_args

# The console scripts this runs, by name: what their installed wrappers call.
ENTRY_POINTS = {"periodiq": ("periodiq", "entrypoint"), "dramatiq": ("dramatiq.__main__", "main")}


def shifted(command: Sequence[str], offset_s: float) -> list[str]:
    """`command` (a console script and its arguments) run with its clock `offset_s` ahead."""
    return [sys.executable, "-m", "tests.shifted_clock", repr(offset_s), *command]


def workers(env: Mapping[str, str], log: Path, offset_s: float):  # type: ignore[no-untyped-def]
    """`dramatiq actors`, as production runs it, on a clock `offset_s` ahead."""
    return process(shifted(worker_args(), offset_s), env, log)


def scheduler_args(offset_s: float) -> list[str]:
    """`periodiq actors`, as production runs it, on a clock `offset_s` ahead."""
    return shifted([str(VENV_BIN / "periodiq"), "actors"], offset_s)


def scheduler(env: Mapping[str, str], log: Path, offset_s: float):  # type: ignore[no-untyped-def]
    """`periodiq actors` on a clock `offset_s` ahead, stopped at the end of the block."""
    return process(scheduler_args(offset_s), env, log)


def clock_offset(to: datetime) -> float:
    """Seconds to move a clock so that it reads `to` now."""
    return (to - datetime.now(UTC)).total_seconds()


def shifted_now(offset_s: float) -> datetime:
    """What a clock `offset_s` ahead reads now."""
    return datetime.now(UTC) + timedelta(seconds=offset_s)


def next_minute_at(second: int, minutes_apart: int = 1) -> datetime:
    """The coming moment `second` seconds into a minute divisible by `minutes_apart`."""
    moment = datetime.now(UTC).replace(second=second, microsecond=0)
    while moment < datetime.now(UTC) or moment.minute % minutes_apart:
        moment += timedelta(minutes=1)
    return moment


def main(argv: Sequence[str]) -> int:
    offset, program, *args = argv
    module, function = ENTRY_POINTS[Path(program).name]
    time_machine.travel(time.time() + float(offset), tick=True).start()
    # time-machine's clock starts to run at its first reading, not at start(): read it now,
    # or a process that first asks after importing its actors runs that much behind.
    time.time()
    sys.argv = [program, *args]
    return getattr(importlib.import_module(module), function)() or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
