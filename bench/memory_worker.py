"""The worker of bench/memory.py: the application's actors (github_top, stargazers, ...), as
`dramatiq actors` loads them. `dramatiq bench.memory_worker` works it (DATABASE_URL,
BROKER_URL, GITHUB_API_URL as usual)."""

from __future__ import annotations

import actors

broker = actors.broker
