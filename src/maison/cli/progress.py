"""The progress bars of the long commands (imports, loads, syntheses): one layout, with the
rate of what is done per second.

https://rich.readthedocs.io/en/stable/progress.html
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def rate_progress(
    console: Console, label: str = "{task.description}", percent: bool = False
) -> Progress:
    """A bar with done/total, the rate (the task's ``rate`` field), elapsed and remaining time."""
    columns: list[ProgressColumn] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if percent:
        columns.append(TaskProgressColumn())
    columns += [TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=console)


def rate(done: float, started: float, unit: str = "") -> str:
    """``12,345 rows/s`` since ``started`` (a ``time.perf_counter()``), empty before any."""
    elapsed = time.perf_counter() - started
    if elapsed <= 0 or not done:
        return ""
    return f"{done / elapsed:,.0f} {unit}/s" if unit else f"{done / elapsed:,.0f}/s"
