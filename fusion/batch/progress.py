"""The progress bar of ``fusion batch``: files/s, audio-hours/s and ETA, on stderr."""

from __future__ import annotations

import time

from rich.progress import TextColumn, TimeRemainingColumn

from fusion.progress import progress_bar


class BatchProgress:
    """A rich progress bar over the files still to do; ``advance(audio_seconds)`` once per finished file."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.files, self.audio_s = total, 0, 0.0
        self.t0 = time.perf_counter()
        extra = (TextColumn("{task.fields[rates]}"), TextColumn("ETA"), TimeRemainingColumn())
        self.bar = progress_bar(enabled, extra=extra)
        self.task = self.bar.add_task("[bold]batch", total=total, rates="")

    def __enter__(self) -> BatchProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def advance(self, audio_seconds: float) -> None:
        self.files += 1
        self.audio_s += audio_seconds
        wall = max(time.perf_counter() - self.t0, 1e-9)
        rates = f"{self.files / wall:.2f} files/s, {self.audio_s / 3600 / wall:.5f} audio-h/s"
        self.bar.update(self.task, advance=1, rates=rates)
