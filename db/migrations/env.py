"""Alembic environment of the application's migrations: the kit runs it for each command,
with the models' metadata, comparing only the application's tables."""

from __future__ import annotations

from taskpipes.store.migrate import run_environment

run_environment()
