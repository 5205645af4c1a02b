"""An application's first migration history, made by its first `taskpipes db` command.

An application names its migrations ("package:folder") before it has any: the folder gets
what Alembic needs there, the env.py that hands each command to the kit and the template
of a revision (it imports the column types a revision uses), and an empty versions/. So a
new application writes no Alembic boilerplate, and a folder that exists is left as it is.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# The files of a new history, as shipped in the wheel: name there -> name in the folder.
NEW_HISTORY = {"env.py.txt": "env.py", "script.py.mako": "script.py.mako"}


def ensure_history(location: Path) -> bool:
    """Make `location` an empty migration history unless it is one; True when it made it."""
    if (location / "env.py").exists():
        return False
    (location / "versions").mkdir(parents=True, exist_ok=True)
    shipped = files("taskpipes.store").joinpath("new_history")
    for source, target in NEW_HISTORY.items():
        if not (location / target).exists():
            (location / target).write_text(shipped.joinpath(source).read_text())
    return True
