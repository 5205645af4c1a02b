"""The kit's tables and the application's, migrated as two Alembic histories.

The kit's revisions ship in the wheel (`migrations/` beside this module) and record
themselves in a version table of their own, `taskpipes_alembic_version`; the
application's live in the script location it names and keep Alembic's `alembic_version`.
`upgrade` applies the kit's first: the application's tables may refer to `runs.id`.

Two version tables rather than two branches of one history: each history stays linear,
so the application generates and numbers its revisions as if it were alone (no `--head`
to pick, no kit revision in its graph), and a kit release adds revisions without touching
the application's files. Both compare against the one metadata the models share (the
application's models sit on the kit's Base), each only the tables it owns.

An application's env.py is `from taskpipes.store.migrate import run_environment` and
`run_environment()`; its script.py.mako needs `${imports}`, where autogenerate puts the
import of each custom column type it writes (`taskpipes.store.tables.UTCDateTime`).
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from alembic import command, context
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Engine, MetaData

from taskpipes.declare.application import Application, resolve
from taskpipes.store.database import make_engine
from taskpipes.store.tables import Base

KIT_MIGRATIONS = Path(__file__).parent / "migrations"
# The kit's history records itself here, the application's in Alembic's default table.
KIT_VERSION_TABLE = "taskpipes_alembic_version"
APP_VERSION_TABLE = "alembic_version"
# How many of the differences `Drift.summary` names.
EXAMPLES = 3


def kit_table_names() -> frozenset[str]:
    """The tables of the kit's own models (the application's are on the same Base)."""
    return frozenset(
        mapper.class_.__tablename__
        for mapper in Base.registry.mappers
        if mapper.class_.__module__.partition(".")[0] == "taskpipes"
    )


@dataclass(frozen=True)
class History:
    """One Alembic history: where its scripts are, where it records itself, what it owns."""

    name: str
    script_location: Path
    version_table: str
    metadata: MetaData
    owns_kit_tables: bool  # the kit's tables, or every other table of the metadata

    def owns(self, table_name: str) -> bool:
        if table_name in (KIT_VERSION_TABLE, APP_VERSION_TABLE):
            return False
        return (table_name in kit_table_names()) == self.owns_kit_tables

    def include_object(
        self, _obj: object, name: str | None, type_: str, _reflected: bool, _compare: object
    ) -> bool:
        # A table left out is left out with its columns, indexes and constraints.
        return type_ != "table" or self.owns(name or "")

    def config(self, engine: Engine) -> Config:
        # quiet: Alembic's own lines ("Generating ...") would come before the command's one.
        quiet = Namespace(quiet=True)
        config = Config(cmd_opts=quiet, attributes={"history": self, "engine": engine})
        config.set_main_option("script_location", str(self.script_location))
        return config

    def unapplied(self, engine: Engine) -> str | None:
        """Where the database stands when it is not at this history's heads."""
        with engine.connect() as connection:
            opts = {"version_table": self.version_table}
            applied = MigrationContext.configure(connection, opts=opts).get_current_heads()
        heads = ScriptDirectory(str(self.script_location)).get_heads()
        if set(applied) == set(heads):
            return None
        at = ", ".join(applied) or "no revision"
        return f"the {self.name}'s migrations are at {at}, not {', '.join(heads)}"

    def changes(self, engine: Engine) -> list[Any]:
        """What autogenerate would write for this history's tables (`alembic check`)."""
        with engine.connect() as connection:
            migration = MigrationContext.configure(connection, opts=self.context_options())
            return list(compare_metadata(migration, self.metadata))

    def context_options(self) -> dict[str, Any]:
        """How Alembic runs and compares this history: in env.py and in `check` alike."""
        return {
            "target_metadata": self.metadata,
            "version_table": self.version_table,
            "include_object": self.include_object,
            "render_item": import_custom_types,
            "render_as_batch": True,  # SQLite alters a table by copying it
            "compare_type": True,
        }


def application_migrations(app: Application) -> tuple[Path | None, MetaData]:
    """The application's script location ("package:folder"; None when it names none: the
    kit's tables alone) and the metadata its models module puts its tables on (the kit's
    Base)."""
    if app.models:
        resolve(app.models)  # importing the module defines its tables
    if not app.migrations:
        return None, Base.metadata
    package, _, folder = app.migrations.partition(":")
    return Path(str(files(package).joinpath(folder))), Base.metadata


def histories(script_location: Path | None, metadata: MetaData) -> list[History]:
    """The kit's history and the application's (if it has one), in the order they are
    applied."""
    kit = History("kit", KIT_MIGRATIONS, KIT_VERSION_TABLE, metadata, owns_kit_tables=True)
    if script_location is None:
        return [kit]
    return [kit, History("application", script_location, APP_VERSION_TABLE, metadata, False)]


class NoMigrations(LookupError):
    """A revision was asked of an application that names no migrations folder."""


@contextmanager
def engine_for(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def upgrade(
    database_url: str, script_location: Path | None, metadata: MetaData, revision: str = "head"
) -> None:
    """The kit's migrations to their head, then the application's to `revision`."""
    kit, *app = histories(script_location, metadata)
    with engine_for(database_url) as engine:
        command.upgrade(kit.config(engine), "head")
        for history in app:
            command.upgrade(history.config(engine), revision)


def revision(
    database_url: str, script_location: Path | None, metadata: MetaData, message: str
) -> Path:
    """The application's next migration, autogenerated from its models; its file."""
    if script_location is None:
        raise NoMigrations(
            "the application names no migrations folder: "
            'taskpipes.Application(migrations="package:folder", models="package.models")'
        )
    _, app = histories(script_location, metadata)
    rev_id = next_revision_id(ScriptDirectory(str(script_location)))
    with engine_for(database_url) as engine:
        script = command.revision(app.config(engine), message, autogenerate=True, rev_id=rev_id)
    assert isinstance(script, Script), "one history, one head: one script"
    return Path(script.path)


def next_revision_id(scripts: ScriptDirectory) -> str | None:
    """The history's numbering carried on (0001, 0002, ...); None lets Alembic pick."""
    head = scripts.get_current_head()
    if head is None:
        return "0001"
    return f"{int(head) + 1:04d}" if head.isdigit() else None


@dataclass(frozen=True)
class Drift:
    """How a database differs from the models: histories not at their head, or changes
    that no migration makes yet (each a phrase such as `add_table feed_items`)."""

    unapplied: list[str]
    changes: list[str]

    @property
    def matches(self) -> bool:
        return not (self.unapplied or self.changes)

    def summary(self) -> str:
        if self.unapplied:
            where = "; ".join(self.unapplied)
            return f"database differs from the models: {where}; run `taskpipes db upgrade`"
        if self.matches:
            return "database matches the models"
        count = len(self.changes)
        examples = ", ".join(self.changes[:EXAMPLES])
        return (
            f"database differs from the models: {count} change{'s' * (count != 1)} "
            f"(e.g. {examples}); run `taskpipes db revision -m MESSAGE`"
        )


def check(database_url: str, script_location: Path | None, metadata: MetaData) -> Drift:
    """`alembic check` over both histories. Autogenerate compares only a database at its
    head, so one behind is reported as such."""
    with engine_for(database_url) as engine:
        both = histories(script_location, metadata)
        unapplied = [where for history in both if (where := history.unapplied(engine))]
        if unapplied:
            return Drift(unapplied, [])
        return Drift([], [describe(change) for h in both for change in h.changes(engine)])


def describe(change: Any) -> str:
    """`add_table feed_items`, `add_column runs.note`: what autogenerate would do, where."""
    # modify_* changes come as a list, one per attribute of the same column.
    kind, *where = change[0] if isinstance(change, list) else change
    names = [part if isinstance(part, str) else getattr(part, "name", None) for part in where]
    return f"{kind} {'.'.join([name for name in names if isinstance(name, str)][:2])}"


def import_custom_types(type_: str, obj: Any, autogen_context: AutogenContext) -> Literal[False]:
    """Autogenerate writes a custom column type as `module.Type()` without importing the
    module: have the revision import it (the rendering itself stays Alembic's)."""
    module = type(obj).__module__
    if type_ == "type" and not module.startswith("sqlalchemy"):
        autogen_context.imports.add(f"import {module}")
    return False


def run_environment() -> None:
    """The body of an env.py: migrates the history this module's commands hand in."""
    history: History = context.config.attributes["history"]
    engine: Engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(connection=connection, **history.context_options())
        with context.begin_transaction():
            context.run_migrations()
