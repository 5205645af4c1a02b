"""How long a rate-limited answer makes us wait: GitHub's documented order, with literals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.github import SECONDARY_LIMIT_WAIT_S, rate_limit_wait

NOW = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
RESET_IN_90_S = str(int(NOW.timestamp()) + 90)


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        # retry-after wins over everything else
        (429, {"retry-after": "7"}, 7.0),
        (
            403,
            {"retry-after": "7", "x-ratelimit-remaining": "0", "x-ratelimit-reset": RESET_IN_90_S},
            7.0,
        ),  # fmt: skip
        # else the reset time, when the quota is used up
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": RESET_IN_90_S}, 90.0),
        (429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": RESET_IN_90_S}, 90.0),
        # a reset already past still waits a moment rather than hammering
        (
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW.timestamp()) - 5)},
            1.0,
        ),  # fmt: skip
        # a reset with quota left is no reason to wait for it: back off
        (
            429,
            {"x-ratelimit-remaining": "12", "x-ratelimit-reset": RESET_IN_90_S},
            SECONDARY_LIMIT_WAIT_S,
        ),  # fmt: skip
        (403, {"_body": "You have exceeded a secondary rate limit"}, SECONDARY_LIMIT_WAIT_S),
        (429, {}, SECONDARY_LIMIT_WAIT_S),
        # an unreadable retry-after falls through to the next rule
        (429, {"retry-after": "soon"}, SECONDARY_LIMIT_WAIT_S),
    ],
)
def test_the_wait_is_retry_after_else_the_reset_else_a_backoff(
    status: int, headers: dict[str, str], wait: float
) -> None:
    assert rate_limit_wait(status, headers, NOW) == wait


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (403, {"_body": "Resource not accessible by integration"}),
        (404, {"retry-after": "7"}),
        (500, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": RESET_IN_90_S}),
    ],
)
def test_other_answers_are_no_rate_limit(status: int, headers: dict[str, str]) -> None:
    assert rate_limit_wait(status, headers, NOW) is None


def test_a_backoff_without_headers_is_at_least_a_minute() -> None:
    # GitHub: with no usable header, wait at least a minute before the next request.
    assert SECONDARY_LIMIT_WAIT_S >= 60
