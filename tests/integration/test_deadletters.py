"""Dead letters, pure: what `dlq list` shows of a message and what `dlq replay` sends."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from taskpipes.rabbitmq.deadletters import (
    DeadLetter,
    describe,
    last_error,
    letter_line,
    letters_table,
    replay_message,
)

SQLALCHEMY_TRACEBACK = """Traceback (most recent call last):
  File "psycopg/connection.py", line 120, in connect
    raise last_ex.with_traceback(None)
psycopg.OperationalError: connection failed: Connection refused

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "dramatiq/worker.py", line 500, in process_message
    self.broker.emit_before("process_message", message)
sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection failed: Connection refused
(Background on this error at: https://sqlalche.me/e/21/e3q8)
"""

STAGE_MESSAGE = {
    "queue_name": "github_top.DQ",
    "actor_name": "github_top_store",
    "args": [12],
    "kwargs": {},
    "options": {
        "taskpipes_run": 12,
        "retries": 6,
        "traceback": SQLALCHEMY_TRACEBACK,
        "eta": 1787000000000,
        "requeue_timestamp": 1787000000000,
        "max_retries": 5,
    },
    "message_id": "m-1",
    "message_timestamp": 1786999990000,
}


def test_last_error_is_the_exception_line_of_the_last_traceback() -> None:
    assert last_error(SQLALCHEMY_TRACEBACK) == (
        "sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection failed: "
        "Connection refused"
    )


def test_last_error_cuts_long_lines_and_accepts_nothing() -> None:
    long = f"Traceback (most recent call last):\n  File 'x'\nValueError: {'y' * 300}\n"
    assert last_error(long) == f"ValueError: {'y' * 185}..."
    assert [last_error(None), last_error(""), last_error("plain text")] == [
        None,
        None,
        "plain text",
    ]


def test_a_stage_message_is_described_by_its_run() -> None:
    assert describe(STAGE_MESSAGE) == DeadLetter(
        queue="github_top",
        message_id="m-1",
        actor="github_top_store",
        tick=None,
        run_id=12,
        failures=6,
        last_error=(
            "sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection failed: "
            "Connection refused"
        ),
    )


def test_a_tick_message_carries_its_tick_as_argument_or_periodiq_option() -> None:
    explicit = {"queue_name": "rollup", "kwargs": {"tick": "2026-08-21T12:15:00+00:00"}}
    periodic = {"queue_name": "rollup", "options": {"scheduled_at": "2026-08-21T12:30:00+00:00"}}

    assert [describe(explicit).tick, describe(periodic).tick] == [
        "2026-08-21T12:15:00+00:00",
        "2026-08-21T12:30:00+00:00",
    ]


def test_a_replay_keeps_the_id_and_arguments_and_forgets_the_attempts() -> None:
    assert replay_message(STAGE_MESSAGE) == {
        "queue_name": "github_top",
        "actor_name": "github_top_store",
        "args": [12],
        "kwargs": {},
        "options": {"taskpipes_run": 12, "max_retries": 5, "retries": 0},
        "message_id": "m-1",
        "message_timestamp": 1786999990000,
    }
    assert STAGE_MESSAGE["options"]["retries"] == 6  # the input is left alone


def test_the_list_lines_up_its_columns() -> None:
    letters = [
        DeadLetter("github_top", "m-1", "github_top_store", None, 12, 6, "ValueError: boom"),
        DeadLetter("rollup", "m-22", "rollup_tick", "2026-08-21T12:15:00+00:00", None, 5, None),
    ]

    assert letters_table(letters).splitlines() == [
        "QUEUE          MESSAGE ID  ACTOR             TICK                       FAILURES  LAST ERROR",  # noqa: E501
        "github_top.XQ  m-1         github_top_store  -                          6         ValueError: boom",  # noqa: E501
        "rollup.XQ      m-22        rollup_tick       2026-08-21T12:15:00+00:00  5         -",
    ]
    assert letters_table([]) == "no dead letters"
    assert letter_line("replayed", letters[1]) == (
        "replayed m-22 rollup_tick tick 2026-08-21T12:15:00+00:00 (queue rollup)"
    )


@given(st.text())
def test_last_error_never_fails_and_stays_short(traceback: str) -> None:
    error = last_error(traceback)
    assert error is None or 0 < len(error) <= 200
