"""`Simulator`: the GitHub simulator running on a background thread, for tests and tools."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, cast

from githubsim.items import search_item
from githubsim.server import SimServer
from githubsim.state import SimState


def epoch(at: datetime) -> int:
    """Naive datetimes are taken as UTC, like the control API does."""
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())


class Simulator:
    """Serve the simulated GitHub API on host:port (port 0 picks a free port); `hostile`
    adds a repository whose name, description and language are markup (githubsim.hostile)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        search_limit: int | None = None,
        core_limit: int | None = None,
        hostile: bool = False,
    ) -> None:
        self.state = SimState(search_limit=search_limit, core_limit=core_limit, hostile=hostile)
        self._server = SimServer((host, port), self.state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="github-sim", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{cast(str, host)}:{port}"

    def set_clock(self, at: datetime, advance: bool = False) -> None:
        self.state.clock.set(at, advance=advance)

    def add_fault(self, endpoint: str, fault: str, times: int = 1, **params: Any) -> None:
        self.state.faults.add(endpoint, fault, times, **params)

    def set_index_lag(self, max_lag_s: int) -> None:
        """How far behind the live counts search ranks (0: strictly sorted)."""
        self.state.index.set_lag(max_lag_s)

    def rename(self, old: str, new: str) -> int:
        return self.state.names.rename(old, new)

    def reset(self) -> None:
        self.state.reset()

    def requests(self) -> dict[str, Any]:
        return self.state.log.summary()

    def top(self, at: datetime, n: int = 100) -> list[dict[str, Any]]:
        """The first n search items at `at`, exactly as GET /search/repositories lists them."""
        ts = epoch(at)
        leaders = self.state.index.ranking(self.state.repos, ts)[:n]
        names = self.state.names
        return [search_item(repo, names.current(repo.id), ts, self.url) for repo, _ in leaders]

    def stargazers(self, full_name: str, at: datetime) -> int:
        resolved = self.state.names.resolve(full_name)
        if resolved is None:
            raise KeyError(full_name)
        return self.state.repos[resolved.repo_id].stars_at(epoch(at))

    def close(self) -> None:
        self.state.wake_stalled()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
