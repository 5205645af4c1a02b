"""The application a `taskpipes` command serves, found by its module's name.

As `dramatiq actors` and `celery -A proj` do, the working directory goes on `sys.path`
first, so an application run from its checkout is found without being installed.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from taskpipes.declare.app_settings import check_all
from taskpipes.declare.application import Application
from taskpipes.declare.registry import Registry, registry
from taskpipes.declare.settings import get_settings


class AppNotFound(LookupError):
    """The application module named by TASKPIPES_APP or --app does not exist."""


def import_app(name: str | None = None) -> ModuleType:
    """Import the application module (`name`, else TASKPIPES_APP): its pipelines are
    declared and its actors registered on the broker."""
    name = name or get_settings().app
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # A module missing inside the application is the application's error, not ours.
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise AppNotFound(
                f"no application module {name!r} (set by TASKPIPES_APP or --app) in "
                f"{os.getcwd()} or on the Python path"
            ) from None
        raise


def application(name: str | None = None) -> Application:
    """The application's `application` declaration, or the empty one, its settings checked:
    a bad value stops every command at start (ConfigError), whatever the command reads."""
    found = getattr(import_app(name), "application", None)
    app = found if isinstance(found, Application) else Application()
    check_all(app.settings)
    return app


def declared_registry() -> Registry:
    """The application's pipelines, as declared (and registered) by its module."""
    import_app()
    return registry
