"""`import actors` builds the broker and registers every actor: `dramatiq actors` and
`periodiq actors` need nothing else."""

# isort: skip_file
# The declarations come first, then the broker and their actors, then the fan-out's own.
import pipelines.catalog  # noqa: F401
import taskpipes
from pipelines import config

# What the `taskpipes` commands use beyond the pipelines, named, not imported; and the
# settings every command and worker checks at start.
application = taskpipes.Application(
    migrations="db:migrations",
    models="db.models",
    web="web.api.app:create_app",
    commands=("githubsim.commands:add_commands",),
    run_options="actors.stargazers_cli",
    settings=config.ALL,
    deploy="pipelines.github_deploy:extras",
)

broker = taskpipes.start(application=application)

from actors import stargazers  # noqa: E402

__all__ = ["application", "broker", "stargazers"]
