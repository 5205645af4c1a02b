"""Generate the alert rules and dashboards from the declared pipelines:
`python deploy/generate.py` (write) or `python deploy/generate.py --check`.

The kit (taskpipes.deploy) builds the files; this script is the application's side, which
hands it its declarations (as declared: TASKPIPES_SCHEDULE_* overrides do not count) and
the panels and alerts of its own metrics (pipelines/github_deploy.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent
# The application runs from the checkout: its packages import from the folder above this
# script's (Python puts the script's own folder first on the path, not the checkout).
sys.path.insert(0, str(DEPLOY_DIR.parent))

import pipelines.catalog  # noqa: E402, F401  (declares the application's pipelines)
from pipelines.github_deploy import extras  # noqa: E402
from taskpipes import registry  # noqa: E402
from taskpipes.deploy import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(DEPLOY_DIR, registry.declared, sys.argv[1:], extras()))
