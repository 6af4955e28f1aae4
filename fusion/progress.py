"""Progress on stderr: the one rich progress bar of training, evaluation and ``fusion batch``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def progress_bar(enabled: bool = True, extra=(), transient: bool = False):
    """A rich ``Progress`` (description, bar, done/total, ``extra`` columns, elapsed) on stderr; silent when
    disabled."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *extra, TimeElapsedColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=transient)


def track(items: Sequence, description: str, enabled: bool = True) -> Iterable:
    """``items`` with a progress bar that disappears when done (nothing when ``enabled`` is False)."""
    with progress_bar(enabled, transient=True) as bar:
        yield from bar.track(items, total=len(items), description=description)
