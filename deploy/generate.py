"""Generate the alert rules and dashboards from the declared pipelines:
`python deploy/generate.py` (write) or `python deploy/generate.py --check`.

The kit (taskpipes.deploy) builds the files; this script is the application's side, which
hands it the pipelines.
"""

from __future__ import annotations

import sys
from pathlib import Path

from actors.registry import PIPELINES
from taskpipes.deploy import Cadence, main

DEPLOY_DIR = Path(__file__).resolve().parent


def cadences() -> list[Cadence]:
    return [
        Cadence(name, int(entry.schedule.period.total_seconds()) if entry.scheduled else None)
        for name, entry in PIPELINES.items()
    ]


if __name__ == "__main__":
    sys.exit(main(DEPLOY_DIR, cadences(), sys.argv[1:]))
