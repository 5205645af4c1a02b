"""Argument types of `taskpipes` commands, the application's included: each refuses a bad
value with one line naming it."""

from __future__ import annotations

import argparse
from datetime import datetime


def tick(text: str) -> datetime:
    from taskpipes.declare.schedule import parse_tick

    try:
        return parse_tick(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:  # NaN included
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value
