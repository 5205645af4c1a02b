"""normalize with literal payloads: the pure core, in milliseconds."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.github_errors import InvalidPayload, SuspectSnapshot
from pipelines.normalize import count_inversions, normalize_top, rank_by_stars
from pipelines.records import RepoSnapshot


def item(repo_id: int, stars: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": repo_id,
        "full_name": f"owner{repo_id}/repo{repo_id}",
        "stargazers_count": stars,
        "forks_count": 10,
        "open_issues_count": 2,
        "language": "Python",
        "license": {"key": "mit", "spdx_id": "MIT", "name": "MIT License"},
        "description": "a repository",
    }
    return {**base, **fields}


def payload(items: list[dict[str, Any]], incomplete: bool = False) -> dict[str, Any]:
    return {"total_count": len(items), "incomplete_results": incomplete, "items": items}


def top(n: int = 100) -> list[dict[str, Any]]:
    return [item(1000 + i, 100_000 - i * 10) for i in range(n)]


def test_a_valid_answer_becomes_100_ranked_records() -> None:
    top_list = normalize_top(payload(top()))
    records = top_list.records

    assert len(records) == 100
    assert records[0] == RepoSnapshot(
        id=1000,
        full_name="owner1000/repo1000",
        rank=1,
        stars=100_000,
        forks=10,
        open_issues=2,
        language="Python",
        license="MIT",
        description="a repository",
    )
    assert [r.rank for r in records] == list(range(1, 101))
    assert top_list.inversions == 0


def test_nulls_and_unicode_are_kept() -> None:
    items = top()
    items[5] = item(1005, items[5]["stargazers_count"], language=None, license=None,
                    description="😎 Awesome — 日本語")  # fmt: skip
    items[6] = item(1006, items[6]["stargazers_count"], description=None)

    records = normalize_top(payload(items)).records

    assert (records[5].language, records[5].license) == (None, None)
    assert records[5].description == "😎 Awesome — 日本語"
    assert records[6].description is None


def test_equal_stars_are_in_order() -> None:
    items = [item(1000 + i, 5000) for i in range(100)]

    records = normalize_top(payload(items)).records

    assert [r.id for r in records] == [1000 + i for i in range(100)]


def test_more_than_100_items_keeps_the_top_100() -> None:
    records = normalize_top(payload(top(130))).records

    assert len(records) == 100 and records[-1].id == 1099


def test_a_duplicated_id_is_suspect_and_named() -> None:
    items = top()
    items[40] = {**items[40], "id": items[3]["id"]}

    with pytest.raises(
        SuspectSnapshot, match=r"repository id 1003 appears twice: .*rank 4 .*rank 41"
    ):
        normalize_top(payload(items))


def test_an_unsorted_answer_is_ranked_by_its_counts_and_its_inversions_counted() -> None:
    # Given GitHub's lagging index: 240 stars listed below 238, as recorded from the real API
    items = top()
    items[10], items[11] = items[11], items[10]
    items[40] = {**items[40], "stargazers_count": items[38]["stargazers_count"] + 1}

    result = normalize_top(payload(items))

    # Then it is accepted, ranked by stars (ties by id), with 1 + 2 pairs out of order
    assert result.inversions == 3
    assert [r.id for r in result.records[9:12]] == [1009, 1010, 1011]
    assert [r.id for r in result.records[37:41]] == [1037, 1040, 1038, 1039]
    assert [r.rank for r in result.records] == list(range(1, 101))


def snapshot(repo_id: int, stars: int, rank: int = 0) -> RepoSnapshot:
    return RepoSnapshot(repo_id, f"o/r{repo_id}", rank, stars, 0, 0, None, None, None)


def test_rank_by_stars_breaks_ties_by_id_and_renumbers() -> None:
    records = [snapshot(7, 238, 1), snapshot(3, 240, 2), snapshot(9, 240, 3), snapshot(1, 5, 4)]

    ranked = rank_by_stars(records)

    assert [(r.rank, r.id, r.stars) for r in ranked] == [
        (1, 3, 240),
        (2, 9, 240),
        (3, 7, 238),
        (4, 1, 5),
    ]


@pytest.mark.parametrize(
    ("stars", "expected"),
    [
        ([], 0),
        ([5], 0),
        ([9, 7, 7, 3], 0),
        ([238, 240], 1),
        ([1, 2, 3, 4], 6),
        ([10, 12, 9, 11, 8], 3),
    ],
)
def test_count_inversions_counts_pairs_listed_below_a_smaller_count(
    stars: list[int], expected: int
) -> None:
    assert count_inversions(stars) == expected


@given(st.lists(st.integers(0, 1000), max_size=40))
def test_inversions_are_zero_exactly_when_sorted(stars: list[int]) -> None:
    assert (count_inversions(stars) == 0) == (stars == sorted(stars, reverse=True))


def test_fewer_than_100_repositories_is_suspect() -> None:
    with pytest.raises(SuspectSnapshot, match="holds 99 repositories, expected 100"):
        normalize_top(payload(top(99)))


def test_incomplete_results_is_suspect() -> None:
    with pytest.raises(SuspectSnapshot, match="incomplete_results"):
        normalize_top(payload(top(), incomplete=True))


def test_a_missing_count_names_field_and_repository() -> None:
    items = top()
    del items[7]["forks_count"]

    with pytest.raises(
        InvalidPayload, match=r"owner1007/repo1007 \(id 1007\): field 'forks_count' is missing"
    ):
        normalize_top(payload(items))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stargazers_count", "99999", "field 'stargazers_count' must be a non-negative integer"),
        ("forks_count", -1, "field 'forks_count' must be a non-negative integer, got -1"),
        ("open_issues_count", True, "field 'open_issues_count' must be a non-negative integer"),
        ("id", "12", "field 'id' must be a positive integer, got '12'"),
        ("full_name", "no-slash", "field 'full_name' must be 'owner/name', got 'no-slash'"),
        ("language", 3, "field 'language' must be a string or null, got 3"),
        ("license", "MIT", "field 'license' must be an object or null"),
    ],
)
def test_a_wrong_type_names_field_and_repository(field: str, value: Any, message: str) -> None:
    items = top()
    items[2] = {**items[2], field: value}

    with pytest.raises(InvalidPayload, match=message):
        normalize_top(payload(items))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stargazers_count", 2**31, "field 'stargazers_count' must be a non-negative integer"),
        ("id", 2**63, "field 'id' must be a positive integer"),
        ("full_name", "owner/name\n", "field 'full_name' must be 'owner/name'"),
        ("full_name", "o/" + "n" * 199, "field 'full_name' is longer than 200 characters"),
        ("language", "Py" * 51, "field 'language' is longer than 100 characters"),
        ("description", "nul \x00 inside", "field 'description' holds a NUL character"),
        ("license", {"spdx_id": "X" * 101}, "field 'license.spdx_id' is longer than 100"),
    ],
)
def test_values_past_what_the_database_holds_are_named(
    field: str, value: Any, message: str
) -> None:
    items = top()
    items[4] = {**items[4], field: value}

    with pytest.raises(InvalidPayload, match=message):
        normalize_top(payload(items))


def test_an_error_shows_a_long_bad_value_cut_short() -> None:
    items = top()
    items[0] = {**items[0], "language": ["x" * 10_000]}

    with pytest.raises(InvalidPayload) as error:
        normalize_top(payload(items))

    assert "got ['xxx" in str(error.value) and len(str(error.value)) < 200


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([], "search answer must be a JSON object, got list"),
        ({"total_count": 0}, "field 'items' must be a list, got NoneType"),
        ({"items": {"a": 1}}, "field 'items' must be a list, got dict"),
        ({"items": [1] + top(99)}, r"items\[0\] must be an object, got int"),
    ],
)
def test_a_broken_shape_is_invalid(answer: Any, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        normalize_top(answer)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


# Where every error message starts: the answer, its items list, one item, one repository.
NAMED_PLACE = re.compile(
    r"^(search answer|field 'items'|items\[\d+\]"
    r"|repository (\S+/\S+ \(id \d+\)|id \d+ appears twice))"
)
# Answers shaped like a search answer whose items are anything, so item errors are reached.
ANSWERS = JSON | st.fixed_dictionaries(
    {"items": st.lists(JSON | st.just(item(1, 5)), max_size=5)},
    optional={"incomplete_results": st.booleans()},
)


@given(ANSWERS)
def test_any_json_either_normalizes_or_raises_a_named_error(answer: Any) -> None:
    before = copy.deepcopy(answer)
    try:
        result = normalize_top(answer)
    except (InvalidPayload, SuspectSnapshot) as exc:
        # One line, saying where the answer was wrong
        assert NAMED_PLACE.match(str(exc)) and "\n" not in str(exc), str(exc)
    else:
        assert len(result.records) == 100 and result.inversions >= 0
    assert answer == before  # normalize reads, never rewrites, what GitHub sent


FIELDS = [*item(1, 1), "incomplete_results", "items", "spdx_id"]
SEARCH_SHAPED = st.fixed_dictionaries(
    {"items": st.lists(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=9), max_size=8)},
    optional={"incomplete_results": JSON, "total_count": JSON},
)


def outcome_of(answer: Any) -> tuple[str, str]:
    """normalize's verdict and its message; any exception but its own two propagates and
    fails the test. An error is one line that starts by naming where the answer was wrong."""
    try:
        result = normalize_top(answer)
    except (InvalidPayload, SuspectSnapshot) as exc:
        assert NAMED_PLACE.match(str(exc)) and "\n" not in str(exc), str(exc)
        return type(exc).__name__, str(exc)
    assert len(result.records) == 100 and result.inversions >= 0
    assert [r.rank for r in result.records] == list(range(1, 101))
    return "records", ""


@given(SEARCH_SHAPED)
def test_search_shaped_json_either_normalizes_or_raises_a_named_error(answer: Any) -> None:
    assert outcome_of(answer)[0] in ("InvalidPayload", "SuspectSnapshot")


@given(st.integers(0, 99), st.sampled_from([*item(1, 1), "license"]), JSON)
def test_any_value_in_any_field_of_a_real_answer_is_accepted_or_named(
    where: int, field: str, value: Any
) -> None:
    items = top()
    items[where] = {**items[where], field: value}

    verdict, message = outcome_of(payload(items))
    assert verdict in ("records", "InvalidPayload", "SuspectSnapshot")
    if verdict == "InvalidPayload":
        # The one field made wrong is the one named
        assert f"field '{field}" in message, message


@given(
    st.lists(st.integers(min_value=0, max_value=10), min_size=100, max_size=100), st.integers(0, 99)
)
def test_a_corrupted_item_never_passes(stars_steps: list[int], corrupt: int) -> None:
    stars = 10**6
    items = []
    for i, step in enumerate(stars_steps):
        stars -= step
        items.append(item(1 + i, stars))
    items[corrupt] = {**items[corrupt], "forks_count": None}

    with pytest.raises(InvalidPayload, match=f"owner{corrupt + 1}/repo{corrupt + 1}"):
        normalize_top(payload(items))
