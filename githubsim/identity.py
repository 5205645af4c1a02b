"""Stable, hash-derived identities: repo and user ids, creation dates, licenses.

Real GitHub ids never change; deriving them from a hash of the lowercase name keeps them
stable across runs and processes without storing anything.
"""

from __future__ import annotations

import base64
import hashlib

# GitHub ids are positive 32-bit-ish integers; stay in that range.
MAX_ID = 2_000_000_000
# A prime above MAX_ID's factors (2 and 5): index -> index * stride mod MAX_ID is one-to-one.
STARGAZER_STRIDE = 1_000_000_007
# created_at is drawn from this range (epoch seconds, 2008-01-01 .. 2020-12-31 UTC).
CREATED_FROM = 1_199_145_600
CREATED_TO = 1_609_459_199
# A deterministic licence pick, with GitHub's own node ids for these licences; None means
# "no licence detected", as GitHub reports it.
LICENSES: tuple[dict[str, str] | None, ...] = (
    {"key": "mit", "name": "MIT License", "spdx_id": "MIT", "node_id": "MDc6TGljZW5zZTEz"},
    {
        "key": "apache-2.0",
        "name": "Apache License 2.0",
        "spdx_id": "Apache-2.0",
        "node_id": "MDc6TGljZW5zZTI=",
    },
    {
        "key": "gpl-3.0",
        "name": "GNU General Public License v3.0",
        "spdx_id": "GPL-3.0",
        "node_id": "MDc6TGljZW5zZTk=",
    },
    {
        "key": "bsd-3-clause",
        "name": 'BSD 3-Clause "New" or "Revised" License',
        "spdx_id": "BSD-3-Clause",
        "node_id": "MDc6TGljZW5zZTU=",
    },
    None,
)
# Repository sizes (KB) are drawn below this.
MAX_SIZE_KB = 2_000_000


def stable_int(*parts: object) -> int:
    """A large non-negative integer derived from the parts, identical in every process."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def repo_id(full_name: str) -> int:
    return stable_int("repo", full_name.lower()) % MAX_ID + 1


def owner_id(login: str) -> int:
    return stable_int("owner", login.lower()) % MAX_ID + 1


def owner_type(login: str) -> str:
    return "Organization" if stable_int("owner-type", login.lower()) % 3 else "User"


def stargazer_id(repo: int, index: int) -> int:
    """Stargazer `index` of `repo`: distinct indices of one repo never share an id.

    An affine map index -> offset + index * STARGAZER_STRIDE (mod MAX_ID) is a bijection on
    [0, MAX_ID) because the stride is coprime to MAX_ID; the repo-specific offset keeps the
    ids of different repos apart, and the stride scatters them as real ids are.
    """
    return (stable_int("stargazer", repo) + index * STARGAZER_STRIDE) % MAX_ID + 1


def created_epoch(full_name: str) -> int:
    span = CREATED_TO - CREATED_FROM
    return CREATED_FROM + stable_int("created", full_name.lower()) % span


def license_for(full_name: str) -> dict[str, str] | None:
    choice = LICENSES[stable_int("license", full_name.lower()) % len(LICENSES)]
    return dict(choice) if choice else None


def size_kb(full_name: str) -> int:
    return 1_000 + stable_int("size", full_name.lower()) % MAX_SIZE_KB


def node_id(kind: str, number: int) -> str:
    """GitHub's legacy global node id format, e.g. base64('010:Repository123')."""
    prefix = {"Repository": "010", "User": "04", "Organization": "012"}[kind]
    return base64.b64encode(f"{prefix}:{kind}{number}".encode()).decode("ascii")
