"""The files of ``fusion batch``: the crash-safe JSONL of results and the CSV summary.

Each result line goes out in one ``os.write`` (looping only if the kernel writes less) and is
fsynced; a kill -9 can at worst leave a torn last line, which is cut off before the next append.
Whole-file rewrites (compaction on resume, the CSV) go to a temp file beside the target and are
renamed over it, so readers see the old file or the new one, never a mix. While a batch writes
the file it holds an exclusive ``flock`` on it: a second batch on the same output stops at once.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from pathlib import Path

from fusion.alerts import SEVERITIES
from fusion.errors import InputError
from fusion.files import atomic_write, check_output, csv_text, json_text

CSV_COLUMNS = ("file", "status", "recorded_at", "duration_s", "text_top", "voice_top", "fused_top", "alert_kinds",
               "severity", "error_kind", "message")
_OUTCOME = {"ok": "report", "error": "error"}  # each status and the field holding its outcome


class ResultsLocked(OSError):
    """The results file is held by another running batch."""


def read_results(path: str | Path) -> list[dict]:
    """The complete records of a results file (a torn last line, from a crash, is ignored); an ``InputError``
    naming the file and the line for a line that is no result record."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data[: data.rfind(b"\n") + 1].splitlines()
    return [_record(line, number, path) for number, line in enumerate(lines, 1) if line.strip()]


def _record(line: bytes, number: int, path: Path) -> dict:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or nested past Python's stack
        raise InputError(path, f"not a fusion batch results file: line {number} is not JSON "
                               f"({exc.__class__.__name__})") from None
    status = record.get("status") if isinstance(record, dict) else None
    if (status not in _OUTCOME or not isinstance(record.get("file"), str) or not isinstance(record.get("key"), str)
            or not isinstance(record.get(_OUTCOME[status]), dict)):
        raise InputError(path, f"not a fusion batch results file: line {number} is not a result (a file, a key, "
                               "and a status ok with its report or error with its error)")
    return record


def _line(record: dict) -> bytes:
    return (json_text(record) + "\n").encode("utf-8")


class ResultsFile:
    """An append-only JSONL file of records, locked while open: one ``os.write`` per line, fsynced;
    a torn tail is cut on open."""

    def __init__(self, path: str | Path, fsync: bool = True):
        self.path = Path(path)
        check_output(self.path, "results", make_folder=True)  # before a torn tail is cut: never cut a file not ours
        self.fsync = fsync
        self.fd = self._open_locked()
        size, keep = os.fstat(self.fd).st_size, len(self._complete())
        if keep < size:
            os.truncate(self.fd, keep)

    def _open_locked(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ResultsLocked(f"{self.path}: another fusion batch is writing this file; "
                                "wait for it or choose another --out") from None
        return fd

    def _complete(self) -> bytes:
        data = self.path.read_bytes()
        return data[: data.rfind(b"\n") + 1]

    def keep_only(self, records: list[dict]) -> None:
        """Rewrite the file atomically with just these records (dropping failures to retry, stale results)."""
        atomic_write(self.path, b"".join(_line(r) for r in records), durable=True)
        new = self._open_locked()  # the new file is locked before the old one's lock goes
        os.close(self.fd)
        self.fd = new

    def append(self, record: dict) -> None:
        view = memoryview(_line(record))
        while view:
            view = view[os.write(self.fd, view):]
        if self.fsync:
            os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def write_csv(records: Iterable[dict], path: str | Path) -> None:
    """One summary row per record (when recorded, duration, top emotions, alert kinds, worst severity, status),
    written atomically."""
    rows = []
    for rec in records:
        row = {"file": rec["file"], "status": rec["status"]}
        if rec["status"] == "ok":
            rep = rec["report"]
            severities = [a["severity"] for a in rep["alerts"]]
            row.update(recorded_at=rep.get("recorded_at") or "", duration_s=rep["duration_s"],
                       text_top=rep["text"]["top"] or "", voice_top=rep["voice"]["top"] or "",
                       fused_top=rep["fused"]["top_ko"],
                       alert_kinds=";".join(sorted({a["kind"] for a in rep["alerts"]})),
                       severity=max(severities, key=SEVERITIES.index) if severities else "")
        else:
            row.update(error_kind=rec["error"]["kind"], message=rec["error"]["message"])
        rows.append([row.get(column, "") for column in CSV_COLUMNS])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, csv_text(CSV_COLUMNS, rows), durable=True)


def timeline_entries(records: Iterable[dict]) -> tuple[list, int, int]:
    """The timeline entries (``fusion.history.entry``) of a results file's reports, and how many records were
    left out: ``(entries, errors, undated)``. An entry's id is the file as the batch recorded it; a report
    without ``recorded_at`` (schema 1.0) is dated by its file's modification time, or left out when the file
    is gone. An ok record whose report is no ``DiaryReport`` is a ValueError naming it."""
    from fusion.dates import file_time
    from fusion.history import entry
    from fusion.report import DiaryReport

    entries, errors, undated = [], 0, 0
    for number, rec in enumerate(records, 1):
        if rec["status"] != "ok":
            errors += 1
            continue
        try:
            report = DiaryReport.model_validate(rec["report"])
        except ValueError as exc:  # pydantic's ValidationError, told in one line
            first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
            where = ".".join(map(str, first["loc"]))
            raise ValueError(f"record {number} ({rec.get('file')}): not a DiaryReport ({where}: {first['msg']})") \
                from None
        when = report.recorded_at
        if when is None:
            try:
                when = file_time(rec["file"])
            except OSError:
                undated += 1
                continue
        entries.append(entry(rec["file"], report, recorded_at=when))
    return entries, errors, undated
