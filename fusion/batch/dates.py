"""``fusion batch --dates DATES.csv``: when each recording was made, when its file's time is not the truth.

The CSV has the columns ``file,recorded_at`` (others are ignored). ``file`` is a path, absolute or
relative to the CSV's own folder (as a list file's lines are to the list file); a row names the batch
input that is the same file (both paths resolved, symlinks followed), however the batch spelled it.
``recorded_at`` is ISO 8601 (``2026-11-02``, ``2026-11-02T21:30``, ``2026-11-02T21:30:00+09:00``, ``…Z``);
a time without a zone is UTC. Inputs without a row keep their file's modification time. Every row is
checked before any recording is read: a bad date, a file that is not an input, or a file named twice
is a one-line error naming the CSV and the line.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from fusion.dates import parse_time, recording_problem
from fusion.errors import InputError
from fusion.files import open_regular

COLUMNS = ("file", "recorded_at")


def _same_file(path: str | Path) -> str:
    return os.path.realpath(os.path.expanduser(path))


def read_dates(path: str | Path, inputs: Iterable[str]) -> dict[str, datetime]:
    """``input as the batch names it → recorded_at`` for every row of the dates CSV at ``path``."""
    path = Path(path)
    try:
        with open_regular(path) as fh:
            text = fh.read().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(path, f"cannot read the dates CSV ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(path, f"the dates CSV is not UTF-8 text (byte {exc.start})") from exc
    reader = csv.DictReader(text.splitlines())
    try:
        rows = [(reader.line_num, row) for row in reader]  # the header is read with the first row
    except csv.Error as exc:  # a field over csv's size limit, raised before its line is counted
        raise InputError(path, f"line {reader.line_num + 1}: not a readable CSV row ({exc})") from None
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(path, f"the dates CSV needs the columns {','.join(COLUMNS)} (missing: {', '.join(missing)})")
    by_file: dict[str, list[str]] = {}
    for f in inputs:
        by_file.setdefault(_same_file(f), []).append(f)
    dates: dict[str, datetime] = {}
    named: dict[str, int] = {}
    for line, row in rows:
        name, when = (row.get("file") or "").strip(), (row.get("recorded_at") or "").strip()
        if not name:
            raise InputError(path, f"line {line}: no file named")
        try:
            moment = parse_time(when)
        except ValueError:
            raise InputError(path, f"line {line}: recorded_at {when!r} of {name} is not an ISO 8601 date "
                                   "(e.g. 2026-11-02 or 2026-11-02T21:30:00+09:00)") from None
        if problem := recording_problem(moment):
            raise InputError(path, f"line {line}: recorded_at of {name}: {problem}")
        target = _same_file(name if Path(name).is_absolute() else path.parent / name)
        if target not in by_file:
            raise InputError(path, f"line {line}: {name} is not one of the batch's inputs "
                                   "(paths are relative to the CSV's folder)")
        if target in named:
            raise InputError(path, f"line {line}: {name} is dated already on line {named[target]}")
        named[target] = line
        dates.update(dict.fromkeys(by_file[target], moment))
    return dates
