"""`import actors` builds the broker and registers every actor: `dramatiq actors` and
`periodiq actors` need nothing else."""

# isort: skip_file
# The declarations come first, then the broker and their actors, then the fan-out's own.
import pipelines.catalog  # noqa: F401
import taskpipes

broker = taskpipes.start()

from actors import stargazers  # noqa: E402

__all__ = ["broker", "stargazers"]
