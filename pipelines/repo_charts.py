"""Repository page data for the served top 100, computed once per rollup.

A repository page reads its 15m/1h/1d history, rank over time and star samples with about
300 index probes: 10 ms or more per request. The rollup runs the page's own read function
(taskpipes.web.views.chart_data) once for each ranked repository instead; the page uses
the stored result while it is as of the newest rollup and reads live otherwise.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from db.models import LatestRanking, RepoChart, Repository
from taskpipes.web.views import chart_data


def refresh_repo_charts(session: Session, as_of: datetime) -> int:
    """Replace every stored page's data with the served ranking's as of `as_of`."""
    session.execute(delete(RepoChart))
    connection = session.connection()
    ranked = session.scalars(
        select(Repository).join(LatestRanking, LatestRanking.repo_id == Repository.id)
    ).all()
    rows = [
        {"repo_id": repo.id, "as_of": as_of, "data": chart_data(connection, repo, as_of).to_json()}
        for repo in ranked
    ]
    if rows:
        session.execute(insert(RepoChart), rows)
    return len(rows)
