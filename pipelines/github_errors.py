"""Errors shared by stages. Permanent ones fail the run at once; the others are retried."""

from __future__ import annotations

from taskpipes.declare.errors import PermanentError

__all__ = [
    "GitHubRequestError",
    "InvalidPayload",
    "MalformedResponse",
    "PermanentError",
    "RateLimited",
    "SuspectSnapshot",
    "TransientError",
]


class InvalidPayload(PermanentError):
    """The GitHub answer breaks the documented shape; the message names field and repo."""


class MalformedResponse(PermanentError):
    """The GitHub answer is not JSON at all."""


class ResponseTooLarge(PermanentError):
    """The GitHub answer is bigger than any real one; refused before it is read whole."""


class GitHubRequestError(PermanentError):
    """GitHub refused the request itself (bad credentials, bad query)."""


class ForeignOrigin(PermanentError):
    """A URL (a `link`, a redirect, a stored page URL) outside the configured API origin."""


class SuspectSnapshot(Exception):
    """A well-formed answer we must not store as a top-100: fetch again later."""


class TransientError(Exception):
    """A 5xx, a timeout or a reset connection: retried with backoff."""


class RateLimited(Exception):
    """GitHub said wait; `wait_seconds` is how long, from its own headers."""

    def __init__(self, wait_seconds: float, resource: str) -> None:
        super().__init__(f"GitHub {resource} rate limit: retry in {wait_seconds:.0f}s")
        self.wait_seconds = wait_seconds
        self.resource = resource
