"""The one failure the kit itself gives meaning to."""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying cannot help: the run fails now and says why."""
