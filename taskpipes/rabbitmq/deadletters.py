"""Dead letters as operators see them, and the message a replay sends. Pure.

A dead message is Dramatiq's own JSON message dict: `queue_name`, `actor_name`, `args`,
`kwargs`, `options`, `message_id`, `message_timestamp`. The Retries middleware leaves the
attempt count in `options.retries` and the last traceback in `options.traceback`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from dramatiq.common import q_name

from taskpipes.store.runs import RUN_OPTION

# The last traceback line is cut to this: enough for the exception and its message.
MAX_ERROR_CHARS = 200
# How Python starts a formatted traceback.
TRACEBACK_HEAD = "Traceback (most recent call last):"
# Options that describe the failed attempts; a replay starts without them.
ATTEMPT_OPTIONS = ("traceback", "eta", "requeue_timestamp")


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    message_id: str
    actor: str
    tick: str | None
    run_id: int | None
    failures: int
    last_error: str | None


def last_error(traceback: str | None) -> str | None:
    """The exception line of the last traceback in `traceback`, cut short.

    That is the first unindented line after the frames; an exception message may run on
    over more lines (SQLAlchemy adds a "Background on this error" link), which are dropped.
    """
    lines = (traceback or "").splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith(TRACEBACK_HEAD)), default=-1)
    after = [line.strip() for line in lines[start + 1 :] if line.strip() and not line[0].isspace()]
    if not after:
        return None
    error = after[0]
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 3] + "..."


def describe(message: Mapping[str, Any]) -> DeadLetter:
    """What a dead message is: its tick comes from the tick argument or periodiq's option."""
    options = message.get("options") or {}
    kwargs = message.get("kwargs") or {}
    run_id = options.get(RUN_OPTION)
    tick = kwargs.get("tick") or options.get("scheduled_at")
    return DeadLetter(
        queue=q_name(str(message.get("queue_name", ""))),
        message_id=str(message.get("message_id", "")),
        actor=str(message.get("actor_name", "")),
        tick=None if tick is None else str(tick),
        run_id=None if run_id is None else int(run_id),
        failures=int(options.get("retries", 0)),
        last_error=last_error(options.get("traceback")),
    )


def replay_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message to send again: same id and arguments, no retries spent, no traceback.

    The id stays: a tick's run row names the message that may claim it. A message that
    died in the delay queue goes back to its canonical queue.
    """
    options = {k: v for k, v in (message.get("options") or {}).items() if k not in ATTEMPT_OPTIONS}
    options["retries"] = 0
    return {**message, "queue_name": q_name(str(message["queue_name"])), "options": options}


def letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {**asdict(letter), "dead_queue": f"{letter.queue}.XQ"}


# Column headers of `taskpipes dlq list`, in order.
COLUMNS = ("QUEUE", "MESSAGE ID", "ACTOR", "TICK", "FAILURES", "LAST ERROR")


def letters_table(letters: list[DeadLetter]) -> str:
    """One line per dead message under a header, columns padded to line up."""
    if not letters:
        return "no dead letters"
    rows = [COLUMNS] + [
        (
            f"{d.queue}.XQ",
            d.message_id,
            d.actor,
            d.tick or "-",
            str(d.failures),
            d.last_error or "-",
        )
        for d in letters
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    )


def letter_line(verb: str, letter: DeadLetter) -> str:
    """`replayed ID ACTOR tick T (queue github_top)`: what replay and purge report."""
    tick = f" tick {letter.tick}" if letter.tick else ""
    return f"{verb} {letter.message_id} {letter.actor}{tick} (queue {letter.queue})"
