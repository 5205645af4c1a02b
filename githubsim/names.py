"""Repository names over time: renames keep the id, the old name redirects (301)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

# owner/name as GitHub allows it (no further slashes).
FULL_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class RenameError(ValueError):
    """A rename the simulator refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Resolved:
    repo_id: int
    moved: bool  # True when the name asked for is a former name


class RepoNames:
    """Current name per repo id, and former names that still lead to the repo."""

    def __init__(self, original: dict[int, str]) -> None:
        self._original = dict(original)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._current = dict(self._original)
            self._by_name = {name.lower(): rid for rid, name in self._current.items()}
            self._former: dict[str, int] = {}

    def current(self, repo_id: int) -> str:
        with self._lock:
            return self._current[repo_id]

    def resolve(self, full_name: str) -> Resolved | None:
        key = full_name.lower()
        with self._lock:
            if key in self._by_name:
                return Resolved(self._by_name[key], moved=False)
            if key in self._former:
                return Resolved(self._former[key], moved=True)
        return None

    def rename(self, old: str, new: str) -> int:
        """Rename `old` (current name) to `new`; returns the unchanged repo id."""
        if not FULL_NAME.match(new):
            raise RenameError(f"invalid repository name {new!r}; expected owner/name", 422)
        with self._lock:
            repo_id = self._by_name.get(old.lower())
            if repo_id is None:
                raise RenameError(f"no repository named {old!r}", 404)
            taken = self._by_name.get(new.lower())
            if taken is not None and taken != repo_id:
                raise RenameError(f"{new!r} is already the name of another repository", 422)
            del self._by_name[old.lower()]
            self._former.pop(new.lower(), None)
            self._former[old.lower()] = repo_id
            self._by_name[new.lower()] = repo_id
            self._current[repo_id] = new
        return repo_id
