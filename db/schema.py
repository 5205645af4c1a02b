"""The application's migrations as `taskpipes db` runs them: where they are, what models
they follow. The kit's own tables are migrated first, by the kit (taskpipes.store.migrate)."""

from __future__ import annotations

from pathlib import Path

import db.models  # noqa: F401  (puts the application's tables on Base.metadata)
from taskpipes.store import migrate
from taskpipes.store.tables import Base

MIGRATIONS = Path(__file__).parent / "migrations"
METADATA = Base.metadata


def upgrade(database_url: str, revision: str = "head") -> None:
    migrate.upgrade(database_url, MIGRATIONS, METADATA, revision)


def check(database_url: str) -> None:
    """Raise when the database and the models disagree: the drift check of the tests."""
    drift = migrate.check(database_url, MIGRATIONS, METADATA)
    if not drift.matches:
        raise AssertionError(drift.summary())
