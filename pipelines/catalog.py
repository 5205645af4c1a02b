"""The application's pipelines, declared to the kit's registry (data only, no I/O)."""

from __future__ import annotations

from pipelines.github_top import github_top
from pipelines.language_stats import language_stats
from pipelines.maintenance import maintenance
from pipelines.rollup import rollup
from pipelines.stargazers import stargazers
from taskpipes import registry

registry.declare(github_top, rollup, maintenance, stargazers, language_stats)

__all__ = ["github_top", "language_stats", "maintenance", "rollup", "stargazers"]
