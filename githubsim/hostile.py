"""A hostile repository: markup, script URLs and bidi overrides where GitHub shows text.

Off by default, so the simulated top 100 stays the real one; `Simulator(hostile=True)`
(or `taskpipes github-sim --hostile`) adds it among the leaders, so every page and answer
that lists the top 100 shows it. Its name is still one that normalize accepts (owner/name,
no other slash, no whitespace): `<script>alert(1)<` / `script>`.
"""

from __future__ import annotations

from githubsim.data import DaySnapshot, RepoRecord, day_epoch

HOSTILE_FULL_NAME = "<script>alert(1)</script>"
HOSTILE_DESCRIPTION = (
    '"><svg onload=alert(2)> <img src=x onerror=alert(3)> '
    '<a href="javascript:alert(4)">javascript:alert(4)</a> '
    "harmless\u202egpj.exe\u202c <style>*{display:none}</style>"
)
HOSTILE_LANGUAGE = '"><svg onload=alert(5)>\u202e'
# Stars on the snapshot days: enough to rank among the top ten, growing like a leader.
HOSTILE_STARS = {"2026-08-15": 300_000, "2026-08-21": 301_200, "2026-08-22": 301_400}


def hostile_record() -> RepoRecord:
    snapshots = tuple(
        DaySnapshot(
            day=day_epoch(day),
            stars=stars,
            forks=1_000,
            open_issues=10,
            language=HOSTILE_LANGUAGE,
            pushed_at=f"{day}T00:00:00Z",
            description=HOSTILE_DESCRIPTION,
        )
        for day, stars in HOSTILE_STARS.items()
    )
    return RepoRecord(full_name=HOSTILE_FULL_NAME, snapshots=snapshots)
