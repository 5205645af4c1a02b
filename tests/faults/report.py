"""The fault suite's table: one row per scenario, printed at the end of `make faults`."""

from __future__ import annotations

from dataclasses import dataclass, field

# Column titles, in order, with the Row attribute each shows.
COLUMNS = (
    ("scenario", "scenario"),
    ("ticks expected", "expected"),
    ("ticks stored", "stored"),
    ("duplicates", "duplicates"),
    ("rows lost", "lost"),
    ("recover s", "recover"),
    ("notes", "notes"),
)


@dataclass
class Tally:
    """What the database holds against what must be there."""

    expected: int = 0
    stored: int = 0
    duplicates: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.expected + other.expected,
            self.stored + other.stored,
            self.duplicates + other.duplicates,
            self.lost + other.lost,
            self.problems + other.problems,
        )


@dataclass
class Row:
    scenario: str
    tally: Tally
    recover_s: float | None = None
    notes: str = ""

    @property
    def expected(self) -> str:
        return str(self.tally.expected)

    @property
    def stored(self) -> str:
        return str(self.tally.stored)

    @property
    def duplicates(self) -> str:
        return str(self.tally.duplicates)

    @property
    def lost(self) -> str:
        return str(self.tally.lost)

    @property
    def recover(self) -> str:
        return "-" if self.recover_s is None else f"{self.recover_s:.1f}"


def table(rows: list[Row]) -> str:
    """A Markdown table, so the README can hold the same text the terminal shows."""
    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(getattr(row, attr)) for _, attr in COLUMNS) + " |")
    return "\n".join(lines)


def assert_nothing_lost(row: Row) -> None:
    tally = row.tally
    assert tally.lost == 0 and tally.duplicates == 0 and tally.stored == tally.expected, (
        f"{row.scenario}: {tally.lost} rows lost, {tally.duplicates} duplicated, "
        f"{tally.stored}/{tally.expected} ticks stored; {'; '.join(tally.problems[:10])}"
    )
