"""`import actors` builds the broker and registers every actor: `dramatiq actors` and
`periodiq actors` need nothing else."""

# isort: skip_file
# The broker comes first: an actor can only be declared once its middleware exists.
from actors.broker import broker
from actors import (
    catchup,
    github_top,
    housekeeping,
    language_stats,
    maintenance,
    rollup,
    stargazers,
)

__all__ = [
    "broker",
    "catchup",
    "github_top",
    "housekeeping",
    "language_stats",
    "maintenance",
    "rollup",
    "stargazers",
]
