"""What the web pages read, computed once per rollup for the served top 100.

A repository page reads its 15m/1h/1d history, rank over time and star samples with about
300 index probes: 10 ms or more per request. The rollup runs the page's own read function
(pipelines.page_data.chart_data) once for each ranked repository instead; the page uses
the stored result while it is as of the newest rollup and reads live otherwise. The top
page's sparklines are drawn from the same 1h points.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from db.models import LatestRanking, RepoChart, Repository, Sparkline
from pipelines.page_data import HISTORY_SPANS, chart_data
from pipelines.sparklines import sparkline_row


def refresh_page_data(session: Session, as_of: datetime) -> tuple[int, int]:
    """Replace every repository's page data and sparkline with the served ranking's as of
    `as_of`. Returns (page data rows, sparkline rows) written."""
    session.execute(delete(RepoChart))
    session.execute(delete(Sparkline))
    connection = session.connection()
    ranked = session.scalars(
        select(Repository).join(LatestRanking, LatestRanking.repo_id == Repository.id)
    ).all()
    charts, sparklines = [], []
    for repo in ranked:
        data = chart_data(connection, repo, as_of)
        charts.append({"repo_id": repo.id, "as_of": as_of, "data": data.to_json()})
        hourly = data.histories.get("1h")
        if hourly:
            since = as_of - HISTORY_SPANS["1h"]
            sparklines.append(sparkline_row(repo.id, hourly, since, as_of))
    for model, rows in ((RepoChart, charts), (Sparkline, sparklines)):
        if rows:
            session.execute(insert(model), rows)
    return len(charts), len(sparklines)
