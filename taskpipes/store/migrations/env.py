"""Alembic environment of the kit's own tables; `taskpipes.store.migrate` runs it."""

from __future__ import annotations

from taskpipes.store.migrate import run_environment

run_environment()
