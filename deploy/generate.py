"""Generate the alert rules and dashboards from the declared pipelines:
`python deploy/generate.py` (write) or `python deploy/generate.py --check`.

The kit (taskpipes.deploy) builds the files; this script is the application's side, which
hands it its declarations (as declared: TASKPIPES_SCHEDULE_* overrides do not count).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pipelines.catalog  # noqa: F401  (declares the application's pipelines)
from taskpipes import registry
from taskpipes.deploy import main

DEPLOY_DIR = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.exit(main(DEPLOY_DIR, registry.declared, sys.argv[1:]))
