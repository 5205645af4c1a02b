"""Run periodiq or dramatiq with this process's wall clock shifted, for scheduler tests.

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
from collections.abc import Sequence
from pathlib import Path

import time_machine

# The console scripts this runs, by name: what their installed wrappers call.
ENTRY_POINTS = {"periodiq": ("periodiq", "entrypoint"), "dramatiq": ("dramatiq.__main__", "main")}


def shifted(command: Sequence[str], offset_s: float) -> list[str]:
    """`command` (a console script and its arguments) run with its clock `offset_s` ahead."""
    return [sys.executable, "-m", "tests.shifted_clock", repr(offset_s), *command]


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
