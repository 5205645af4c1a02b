"""The database's schema brought to the newest migration: what `taskpipes db upgrade` and
`taskpipes.testing.upgrade` run, in one place.

The application names its Alembic folder ("package:folder", `taskpipes.Application`); the
kit's own tables are created by the application's migrations until the kit ships its own.
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config


def alembic_config(database_url: str, migrations: str) -> Config:
    """Alembic's configuration for the migrations at `migrations` ("package:folder")."""
    package, _, folder = migrations.partition(":")
    config = Config()
    config.set_main_option("script_location", str(files(package).joinpath(folder)))
    # ConfigParser interpolation would choke on a %-encoded password.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, migrations: str) -> None:
    """Apply every migration of `migrations` ("package:folder") not yet applied."""
    command.upgrade(alembic_config(database_url, migrations), "head")


def check(database_url: str, migrations: str) -> None:
    """Raise when the models and the migrations disagree (alembic check)."""
    command.check(alembic_config(database_url, migrations))
