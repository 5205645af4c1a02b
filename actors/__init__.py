"""`import actors` builds the broker and registers every actor: `dramatiq actors` and
`periodiq actors` need nothing else."""

from actors import catchup, github_top, housekeeping, maintenance, rollup, stargazers
from actors.broker import broker

__all__ = ["broker", "catchup", "github_top", "housekeeping", "maintenance", "rollup", "stargazers"]
