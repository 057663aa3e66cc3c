"""The summary `algoperf score` prints: the leaderboard as a rich table and the lines that say
what to look at. On a terminal it is drawn with colours and box lines; piped or captured (not a
TTY) it is plain text, the tables in markdown form. Never imports torch or jax."""

from __future__ import annotations

import sys
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from algoperf import scoring
from algoperf.report_tables import (
    LeaderboardTable,
    WorkloadProgress,
    cells_note,
    excluded_heading,
    leaderboard_tables,
    nothing_reached_line,
    stability_notes,
    summary_line,
    unverified_line,
)

#: Width of plain-text output: wide enough that table cells are never folded.
PLAIN_WIDTH = 400
CELL_STYLES = {"best": "bold green", "reached": "green", "slow": "yellow", "missed": "red"}


def _console(file: TextIO | None) -> Console:
    file = sys.stdout if file is None else file
    terminal = file.isatty()
    return Console(
        file=file,
        width=None if terminal else PLAIN_WIDTH,
        color_system="auto" if terminal else None,
        force_terminal=terminal,
        highlight=False,
        emoji=False,
        markup=False,
        soft_wrap=not terminal,
    )


def _table(table: LeaderboardTable, plain: bool) -> Table:
    rich_table = Table(
        title=table.title,
        title_justify="left",
        box=box.MARKDOWN if plain else box.SIMPLE_HEAD,
        show_edge=plain,
        pad_edge=plain,
    )
    for i, name in enumerate(table.header):
        rich_table.add_column(Text(name), justify="right" if i in (0, 3) else "left", no_wrap=plain)
    for row in table.rows:
        cells = [Text(str(row.rank)), Text(row.submission), Text(row.framework), Text(row.score_text)]
        if table.speedup_header:
            cells.append(Text(str(row.speedup)))
        cells += [Text(c.text(), style=CELL_STYLES[c.status]) for c in row.cells]
        rich_table.add_row(*cells)
    return rich_table


def _print_table(console: Console, table: Table) -> None:
    """Print `table`; as plain text without the blank lines and trailing spaces of its edges."""
    if console.is_terminal:
        console.print(table)
        return
    with console.capture() as captured:
        console.print(table)
    lines = [line.rstrip() for line in captured.get().splitlines()]
    console.file.write("".join(f"{line}\n" for line in lines if line))


def print_summary(
    scores: scoring.Scores, progress: list[WorkloadProgress], file: TextIO | None = None
) -> None:
    """Print the leaderboard of `scores` with its summary, what was left out, a line per workload
    that few or no trials reached, stability and warnings, to `file` (default: stdout)."""
    console = _console(file)
    plain = not console.is_terminal
    title = f"Leaderboard: {scores.label}" if scores.label else "Leaderboard"
    console.print(Text(title, style="bold"))
    console.print(Text(summary_line(scores), style="dim"))
    unverified = unverified_line(scores)
    if unverified:
        console.print(Text(unverified, style="bold red"))
    if scores.excluded:
        console.print(Text(excluded_heading(scores), style="bold"))
        for line in scores.excluded:
            console.print(Text(f"- {line}"))
    nothing = nothing_reached_line(scores)
    if nothing:
        console.print(Text(nothing, style="yellow"))
    for table in leaderboard_tables(scores):
        console.print()
        _print_table(console, _table(table, plain))
    console.print(Text(cells_note(scores), style="dim"))
    notes = [w.note for w in progress if w.note]
    if notes:
        console.print()
        console.print(Text("Progress toward the targets (details in report.html)", style="bold"))
        for note in notes:
            console.print(Text(f"- {note}", style="yellow"))
    console.print()
    console.print(Text("Stability", style="bold"))
    for note in stability_notes(scores):
        console.print(Text(f"- {note}"))
    if scores.warnings:
        console.print()
        console.print(Text("Warnings", style="bold"))
        for line in scores.warnings:
            console.print(Text(f"- {line}", style="yellow"))
