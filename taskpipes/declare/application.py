"""What the kit needs to know of an application beyond its pipelines.

An application module (`TASKPIPES_APP`, default `actors`) declares its pipelines when
imported, and may name an `application = taskpipes.Application(...)`. Each part is a
"module:attribute" string, so naming it imports nothing: `taskpipes status` never loads
the web layer, `dramatiq actors` never loads the command-line extras. Its settings are the
exception: small objects that read nothing until asked, listed so the kit can check them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from taskpipes.declare.app_settings import Setting


@dataclass(frozen=True)
class Application:
    """The application's parts the kit's commands use; every one is optional.

    - `migrations`: its Alembic folder as "package:folder" (`taskpipes db upgrade` applies
      it after the kit's own);
    - `models`: the module whose import defines its tables on `taskpipes.Base`
      (`taskpipes db revision` and `db check` compare them with the database);
    - `web`: "module:factory" of the FastAPI app `taskpipes serve` serves (it includes the
      kit's router); without it, `serve` serves the kit's router alone;
    - `commands`: "module:function" each adding subcommands to `taskpipes`
      (`function(subparsers)`; each subparser sets `handler=callable(args) -> exit code`);
    - `run_options`: a module adding pipeline-specific options to `taskpipes run`
      (`PIPELINE`, `add_options`, `given`, `run`);
    - `settings`: its own settings (`taskpipes.Setting`), each checked when a `taskpipes`
      command starts and by `taskpipes.start(application=...)`, so that a bad value stops
      the process at start, named, instead of a stage at first use;
    - `deploy`: "module:function" returning its `taskpipes.deploy.Extras` (panels and alert
      rules for its own metrics), which `taskpipes generate` adds to what it writes.
    """

    migrations: str | None = None
    models: str | None = None
    web: str | None = None
    commands: tuple[str, ...] = ()
    run_options: str | None = None
    settings: tuple[Setting[Any], ...] = ()
    deploy: str | None = None


def resolve(reference: str) -> Any:
    """The object a "module:attribute.path" string names (a module for "module")."""
    module_name, _, path = reference.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in filter(None, path.split(".")):
        found = getattr(found, part)
    return found
