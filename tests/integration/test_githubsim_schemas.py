"""Every body the simulator serves validates against GitHub's official JSON schemas.

tests/data/github-openapi-subset.json is ../shared/github/openapi-subset.json: the schemas
of a search answer and a stargazer page from GitHub's own OpenAPI description.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from githubsim import Simulator

SCHEMAS = json.loads(
    (Path(__file__).parents[1] / "data" / "github-openapi-subset.json").read_text()
)
DEFS = SCHEMAS["json_schema"]["$defs"]
AUG_20 = datetime(2026, 8, 20, 12, tzinfo=UTC)
STAR_JSON = "application/vnd.github.star+json"


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": DEFS})


def problems(name: str, body: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(body)]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(search_limit=10_000, core_limit=100_000) as server:
        server.set_clock(AUG_20)
        yield server


def get(sim: Simulator, path: str, accept: str | None = None, **params: object) -> Any:
    headers = {"Accept": accept} if accept else {}
    answer = requests.get(f"{sim.url}{path}", params=params, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize(("page", "per_page"), [(1, 100), (2, 100), (3, 30)])
def test_search_pages_validate(sim: Simulator, page: int, per_page: int) -> None:
    body = get(
        sim, "/search/repositories", q="stars:>1000", sort="stars", per_page=per_page, page=page
    )

    assert body["items"]
    assert problems("search-repositories-200", body) == []
    assert any(item["license"] is None for item in get_top(sim)["items"])


def get_top(sim: Simulator) -> Any:
    return get(sim, "/search/repositories", q="stars:>50000", sort="stars", per_page=100)


@pytest.mark.parametrize(
    ("accept", "schema"),
    [(None, "stargazers-200-default"), (STAR_JSON, "stargazers-200-star")],
)
def test_stargazer_pages_validate(sim: Simulator, accept: str | None, schema: str) -> None:
    for full_name in ("axios/axios", "torvalds/linux"):
        body = get(sim, f"/repos/{full_name}/stargazers", accept, per_page=100, page=3)

        assert len(body) == 100
        assert problems(schema, body) == []
        assert problems("stargazers-200", body) == []


def test_the_schemas_catch_a_missing_field() -> None:
    # The check itself can fail: an item without `clone_url` or an owner without `url`.
    item = {"id": 1}

    assert any("clone_url" in problem for problem in problems("repo-search-result-item", item))
    assert any("'url'" in problem for problem in problems("simple-user", {"login": "x"}))
