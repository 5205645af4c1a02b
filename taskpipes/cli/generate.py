"""`taskpipes generate DIR`: the deployment files of the application's declared pipelines.

Any application gets the Prometheus alert rules (PipelineStale with one clause per
scheduled pipeline, at that pipeline's own period), their `promtool test rules` cases and
the Grafana dashboards from its declarations, with what its `Application(deploy=...)`
adds for its own metrics, as the flagship's deploy/generate.py does.
`--check` writes nothing and fails naming each file that differs: a CI step for an
application that commits its generated files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taskpipes.cli.discovery import declared_registry
from taskpipes.cli.exits import EXIT_FAILED, EXIT_USAGE
from taskpipes.declare.application import resolve

# The dashboards are built with Grafana's SDK, which only the `deploy` extra installs.
NEEDS_EXTRA = (
    "taskpipes generate: the dashboards need the deploy extra: pip install 'taskpipes[deploy]'"
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    generate = sub.add_parser(
        "generate",
        help="write the alert rules, their tests and the dashboards of the declared pipelines",
    )
    generate.add_argument(
        "directory", type=Path, help="where: prometheus/ and grafana/ are written under it"
    )
    generate.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming each outdated file"
    )
    generate.set_defaults(handler=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    # Deferred: the optional Grafana SDK is imported by this command alone.
    try:
        from taskpipes import deploy
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("grafana_foundation_sdk"):
            raise
        print(NEEDS_EXTRA, file=sys.stderr)
        return EXIT_USAGE
    declared = declared_registry().declared
    app = args.application
    extras = resolve(app.deploy)() if app.deploy else deploy.NO_EXTRAS
    directory: Path = args.directory
    if args.check:
        outdated = deploy.outdated(directory, declared, extras)
        for name in outdated:
            print(f"{directory / name} differs from the declarations: run taskpipes generate")
        return EXIT_FAILED if outdated else 0
    for name in deploy.write(directory, declared, extras):
        print(f"wrote {directory / name}")
    return 0
