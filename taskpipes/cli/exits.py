"""The exit codes of every `taskpipes` command, the application's included."""

from __future__ import annotations

# The work asked for was done (or was already done).
EXIT_OK = 0
# The work failed, or a service it needs could not be reached.
EXIT_FAILED = 1
# The command was wrong: a usage or configuration error, an unknown name.
EXIT_USAGE = 2
