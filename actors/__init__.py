"""`import actors` builds the broker and registers every actor: `dramatiq actors` and
`periodiq actors` need nothing else."""

from actors.broker import broker
from actors import github_top
from actors import rollup
from actors import catchup
from actors import stargazers

__all__ = ["broker", "github_top", "rollup", "catchup", "stargazers"]
