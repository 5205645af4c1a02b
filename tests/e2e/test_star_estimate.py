"""The star history of a repository past GitHub's 40,000-stargazer cap: the gap between
the last listed star and our first snapshot is drawn as a marked estimate, and a log
scale is a plain link. In Chromium and the Nu HTML Checker, over real pipeline runs."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_web import (  # noqa: F401  (fixtures)
    chromium,
    filled_sqlite,
    get,
    nu_validator_errors,
    screenshot_dir,
)


def ends(points: str | None) -> tuple[str, str]:
    assert points, "a line without points"
    pairs = points.split()
    return pairs[0], pairs[-1]


def test_the_gap_is_a_marked_estimate_and_log_scale_is_a_link(
    filled_sqlite,  # noqa: F811
    chromium,  # noqa: F811
    tmp_path: Path,
) -> None:
    base, starred = filled_sqlite
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/repos/{starred}")

    # The repository's list is capped (over 40,000 stars): the estimate joins the two parts
    chart = page.locator("figure.chart").first
    estimate = chart.locator("polyline.line-estimate")
    assert estimate.count() == 1
    listed = ends(chart.locator("polyline.line-stargazers").get_attribute("points"))
    ours = ends(chart.locator("polyline.line-ours").get_attribute("points"))
    assert ends(estimate.get_attribute("points")) == (listed[1], ours[0])
    assert "estimate" in chart.locator(".legend").inner_text()
    assert "estimate" in (estimate.locator("title").text_content() or "")
    page.screenshot(path=str(screenshot_dir() / "repo-estimate-1280.png"), full_page=True)

    # The log scale is a plain link, and back
    page.get_by_role("link", name="Log scale").click()
    assert page.url.endswith("?scale=log")
    assert "(log scale)" in (page.locator("#star-history-title").text_content() or "")
    assert page.locator("figure.chart").first.locator("polyline.line-estimate").count() == 1
    page.screenshot(path=str(screenshot_dir() / "repo-log-1280.png"), full_page=True)
    page.get_by_role("link", name="Linear scale").click()
    assert "(log scale)" not in (page.locator("#star-history-title").text_content() or "")
    page.close()
    assert errors == []

    # Both scales are valid HTML; an unknown one is a page naming it (one fill for all)
    bad = get(base, f"/repos/{starred}?scale=sideways")
    assert bad.status_code == 422 and "No scale named sideways" in bad.text
    pages = []
    for number, path in enumerate((f"/repos/{starred}?scale=log", f"/repos/{starred}?scale=x")):
        pages.append(tmp_path / f"page{number}.html")
        pages[-1].write_text(get(base, path).text, encoding="utf-8")
    assert not nu_validator_errors(pages)
