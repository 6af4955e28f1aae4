"""When a diary was recorded: times made UTC, read from a file or from text, and checked for sense.

The pipeline, the batch and the service read a recording's time through these, and the timeline
(``fusion.history``) orders diaries by it.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC time (a naive one is taken to be UTC already). A moment whose offset takes it past
    the years 1 to 9999 (``0001-01-01T00:00+14:00``) becomes that edge, so callers refuse it as any out-of-range
    date instead of overflowing."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        edge = datetime.min if moment.utcoffset() > timedelta(0) else datetime.max
        return edge.replace(tzinfo=timezone.utc)


def file_time(path: str | Path) -> datetime:
    """When a recording file was last modified (its recording time, for want of a better one), UTC; OSError if
    it cannot be read."""
    return datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc)


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or date and time as an aware UTC datetime (no zone: UTC); ValueError if it is none."""
    return utc(datetime.fromisoformat(text.strip()))


EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)


def recording_problem(moment: datetime, now: datetime | None = None) -> str | None:
    """Why ``moment`` cannot be when a diary was recorded (before 1970, or more than a day after ``now``), or None."""
    now = now or datetime.now(timezone.utc)
    if utc(moment) < EARLIEST:
        return f"{moment.date().isoformat()} is before {EARLIEST.year}"
    if utc(moment) > now + timedelta(days=1):
        return f"{moment:%Y-%m-%d %H:%M} is more than a day in the future"
    return None
