"""Rich progress bars on stderr for long work (fit, sample, reports)."""

from __future__ import annotations

from typing import Any


def progress_bar(enabled: bool, total: int, label: str, completed: int = 0) -> tuple[Any, Any] | None:
    """Start a rich progress bar on stderr; returns ``(progress, task)`` or None when disabled.

    Update with ``progress.update(task, advance=1)``; finish with ``progress.stop()``.
    """
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 TimeRemainingColumn(), console=Console(stderr=True))
    p.start()
    return p, p.add_task(label, total=total, completed=completed)
