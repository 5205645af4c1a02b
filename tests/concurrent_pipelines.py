"""The pipelines of tests.concurrent_stages, declared next to the real actors, for
`dramatiq tests.concurrent_pipelines --processes 1 --threads 4`: one process, so the
copies' count inside a stage (tests.copies) is shared by all of them."""

from __future__ import annotations

import actors  # noqa: F401  (the broker and the kit's actors come first)
from taskpipes import registry
from tests.concurrent_stages import PIPELINES

registry.declare(*PIPELINES)
