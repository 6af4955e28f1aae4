"""The files of ``fusion batch`` besides its inputs: the results file (torn tail, lock, a file that is not one), the
CSV summary (where it may go, cells kept as text) and ``--dates``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusion import analyze_many
from fusion.batch import ResultsFile, read_results, run_batch
from fusion.batch.results import ResultsLocked
from fusion.cli import app as cli_app
from fusion.report import DiaryReport


def test_results_file_cuts_a_torn_tail_and_appends_whole_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"file":"a","key":"k","status":"ok","report":{}}\n{"file":"b","ke')
    results = ResultsFile(path)
    results.append({"file": "c", "key": "k2", "status": "error", "error": {"kind": "bad_input", "message": "m"}})
    results.close()
    assert [r["file"] for r in read_results(path)] == ["a", "c"]
    assert path.read_bytes().count(b"\n") == 2


def test_a_second_batch_on_the_same_output_is_refused_while_the_first_writes(tmp_path):
    path = tmp_path / "r.jsonl"
    first = ResultsFile(path)
    try:
        with pytest.raises(ResultsLocked, match="another fusion batch is writing"):
            ResultsFile(path)
        first.keep_only([])  # the rewritten file is locked too
        with pytest.raises(ResultsLocked):
            ResultsFile(path)
        done = subprocess.run([sys.executable, "-m", "fusion.cli", "batch", str(tmp_path), "--out", str(path), "-q"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "another fusion batch is writing" in done.stderr
    finally:
        first.close()
    ResultsFile(path).close()  # free again once the first is done


@pytest.mark.slow
def test_dates_csv_sets_each_recorded_at_and_a_changed_date_updates_the_line_without_a_new_analysis(clips, tmp_path):
    """``--dates``: rows name inputs by a path relative to the CSV (or absolute), a naive time is UTC, an input
    without a row keeps its file's modification time; identical files dated apart keep their own dates. The date
    is not part of the resume key: a rerun with another date rewrites that line and analyses nothing."""
    folder = clips[0].parent
    twin = folder / "twin.flac"
    twin.write_bytes(clips[0].read_bytes())
    os.utime(clips[2], (1_780_000_000, 1_780_000_000))
    dates = tmp_path / "dates.csv"
    dates.write_text(f"file,recorded_at\nin/{clips[0].name},2026-11-02T21:30:00+09:00\n"
                     f"{clips[1]},2026-11-03\nin/twin.flac,2026-11-05T08:00:00Z\n", encoding="utf-8")
    inputs = [*clips[:3], twin]
    out, table = tmp_path / "r.jsonl", tmp_path / "r.csv"
    result = CliRunner().invoke(cli_app, ["batch", *(["--dates", str(dates)]), "--out", str(out), "--csv", str(table),
                                          "-q", str(folder / "*.flac")])
    assert result.exit_code == 0, result.output
    records = {Path(r["file"]).name: r for r in read_results(out)}
    assert len(records) == len(clips) + 1  # every clip of the folder; only the dated ones have rows
    when = {name: r["report"]["recorded_at"] for name, r in records.items()}
    assert when[clips[0].name] == "2026-11-02T12:30:00Z" and when[clips[1].name] == "2026-11-03T00:00:00Z"
    assert when["twin.flac"] == "2026-11-05T08:00:00Z", "the same content, analysed once, dated apart"
    assert records["twin.flac"]["report"]["transcript"] == records[clips[0].name]["report"]["transcript"]
    assert datetime.fromisoformat(when[clips[2].name]) == datetime.fromtimestamp(1_780_000_000, timezone.utc)
    rows = {Path(r["file"]).name: r for r in csv.DictReader(table.open(encoding="utf-8"))}
    assert {name: row["recorded_at"] for name, row in rows.items()} == when
    assert DiaryReport.model_validate(records[clips[1].name]["report"]).recorded_at == datetime(2026, 11, 3,
                                                                                                 tzinfo=timezone.utc)

    keys = {name: r["key"] for name, r in records.items()}
    dates.write_text(f"file,recorded_at\n{clips[1].name},2026-11-04T07:00\n", encoding="utf-8")
    dates.rename(folder / "dates.csv")
    again = run_batch([str(p) for p in inputs], out, dates=folder / "dates.csv", progress=False)
    assert (again.done, again.skipped, again.audio_s) == (0, 4, 0.0), "nothing analysed again"
    # clips[1] has a new date; clips[0] and the twin lost their rows, so their file's time is their date now
    assert again.redated == 3 and "3 given a new date" in again.line()
    records = {Path(r["file"]).name: r for r in read_results(out)}
    assert records[clips[1].name]["report"]["recorded_at"] == "2026-11-04T07:00:00Z"
    assert records[clips[2].name]["report"]["recorded_at"] == when[clips[2].name]
    assert {name: r["key"] for name, r in records.items()} == keys, "the same keys: the date is no analysis input"
    assert run_batch([str(p) for p in inputs], out, dates=folder / "dates.csv", progress=False).redated == 0


@pytest.mark.slow
def test_analyze_many_passes_the_date_past_the_decode_ahead(clips):
    """The worker decodes ahead and gives the pipeline decoded audio, which has no file time: the time is sent
    with each input instead."""
    os.utime(clips[3], (1_770_000_000, 1_770_000_000))
    given = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
    results = list(analyze_many(clips[2:4], dates={str(clips[2]): given}))
    assert [r.report.recorded_at for r in results] == [given, datetime.fromtimestamp(1_770_000_000, timezone.utc)]


@pytest.mark.parametrize("rows, problem", [
    ("file,recorded_at\npfa00001.flac,2026-11-02\npfa00002.flac,yesterday\n",
     "line 3: recorded_at 'yesterday' of pfa00002.flac is not an ISO 8601 date"),
    ("file,recorded_at\npfa00001.flac,2026-11-02\nnot_here.flac,2026-11-03\n",
     "line 3: not_here.flac is not one of the batch's inputs"),
    ("file,recorded_at\npfa00001.flac,2026-11-02\n./pfa00001.flac,2026-11-03\n",
     "line 3: ./pfa00001.flac is dated already on line 2"),
    ("file,when\npfa00001.flac,2026-11-02\n",
     "the dates CSV needs the columns file,recorded_at (missing: recorded_at)"),
    ("file,recorded_at\npfa00001.flac,\n", "line 2: recorded_at '' of pfa00001.flac is not an ISO 8601 date"),
    (b"\xff\xfe\x00f\x00i\x00l\x00e", "the dates CSV is not UTF-8 text (byte 0)"),
    (None, "cannot read the dates CSV (No such file or directory)"),
    ("file,recorded_at\npfa00001.flac,1969-12-31T23:00:00Z\n", "line 2: recorded_at of pfa00001.flac: 1969-12-31 is "
                                                               "before 1970"),
    ("file,recorded_at\npfa00001.flac,2999-01-01\n", "line 2: recorded_at of pfa00001.flac: 2999-01-01 00:00 is "
                                                     "more than a day in the future"),
    ("file,recorded_at\npfa00001.flac,2026-11-02\n" + "x" * 300_000 + ",2026-11-03\n",
     "line 3: not a readable CSV row (field larger than field limit (131072))"),
])
def test_a_bad_dates_csv_is_one_line_naming_it_before_any_work(clips, tmp_path, rows, problem):
    dates = clips[0].parent / "dates.csv"
    dates.unlink(missing_ok=True)
    if isinstance(rows, bytes):
        dates.write_bytes(rows)
    elif rows is not None:
        dates.write_text(rows, encoding="utf-8")
    out = tmp_path / "r.jsonl"
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli_app, ["batch", str(clips[0].parent), "--out", str(out), "--dates", str(dates)])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert f"error: {dates}: {problem}" in line and len(result.output.strip().splitlines()) <= 2, result.output
    assert not out.exists() and time.perf_counter() - t0 < 5, "refused before any recording is read"


@pytest.mark.parametrize(("content", "problem"), [
    ('{"name": "mine", "pitch": 1}', "not a readable baseline JSON"),
    (None, "is neither one of ['female', 'male'] nor an existing JSON file"),
], ids=["not-a-baseline", "missing"])
def test_a_bad_baseline_is_one_line_before_any_work(clips, tmp_path, content, problem):
    """``batch --gender mine.json`` with a file that is no baseline stops at once (before: every row an error)."""
    baseline = tmp_path / "mine.json"
    if content is not None:
        baseline.write_text(content, encoding="utf-8")
    out = tmp_path / "r.jsonl"
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli_app, ["batch", str(clips[0].parent), "--out", str(out), "--gender", str(baseline)])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert line.startswith("error:") and problem in line and len(result.output.strip().splitlines()) <= 2, result.output
    assert not out.exists() and time.perf_counter() - t0 < 5, "refused before any recording is read"


@pytest.mark.parametrize(("content", "problem"), [
    (b"my notes about this week's recordings\nsecond line of my own notes, kept as it is\n",
     "the file there is not a fusion batch results file"),
    (b"fLaC\0\0\0\x22 a recording, cut", "the file there is not a fusion batch results file"),
    (b'{"a":1}\n', "the file there is not a fusion batch results file"),
    (b"[1,2]\n", "the file there is not a fusion batch results file"),
    (b'{"file":"x.flac","key":"k","status":"ok"}\n', "line 1 is not a result"),
    (b'{"file":"x.flac","key":"k","status":"ok","report":{}}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n",
     "line 2 is not JSON"),
], ids=["notes", "recording", "object", "array", "no-report", "deep"])
def test_an_out_file_that_is_no_results_file_is_one_line_and_left_whole(tmp_path, content, problem):
    """``batch --out notes.txt`` (or a recording, or unrelated JSON lines) stops at once with one line and never
    cuts what it takes for a torn tail (before: 69 bytes of notes cut to 28, tracebacks for JSON lines)."""
    (tmp_path / "in").mkdir()
    out = tmp_path / "in" / "taken.flac"
    out.write_bytes(content)
    result = CliRunner().invoke(cli_app, ["batch", str(tmp_path / "in"), "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and problem in " ".join(result.output.split()), result.output
    assert str(out) in result.output.replace("\n", "") and result.exception.__class__ is SystemExit
    assert out.read_bytes() == content


def test_an_unwritable_csv_is_refused_before_the_batch_runs(clips, tmp_path):
    """``--csv`` to a folder, into a path under a file, or onto the results file itself: one line, no result
    line written (before: the whole batch ran, then it failed)."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    out = tmp_path / "r.jsonl"
    for table, problem in ((tmp_path, "it is a directory"), (blocker / "s.csv", "cannot create the folder"),
                           (out, "it is one of the inputs"), (clips[1], "it is one of the inputs")):
        result = CliRunner().invoke(cli_app, ["batch", str(clips[0].parent), "--out", str(out), "--csv", str(table),
                                              "--quiet"])
        assert result.exit_code == 2 and problem in " ".join(result.output.split()), result.output
        assert not out.exists(), "refused before any work"


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_kept_as_text(tmp_path, monkeypatch):
    """Inputs named ``=cmd|' -C calc'!A0.flac`` and ``@SUM(1+1).wav``: their CSV cells (file and message) start with
    ``'`` so a spreadsheet shows them as text (before: the cells began with = and @)."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["=cmd|' -C calc'!A0.flac", "@SUM(1+1).wav"]
    for name in names:
        (folder / name).write_text("not audio", encoding="utf-8")
    table = tmp_path / "s.csv"
    listed = folder / "list.txt"
    listed.write_text("\n".join(names) + "\n", encoding="utf-8")
    monkeypatch.chdir(folder)  # relative inputs: the cells start with the names themselves
    result = CliRunner().invoke(cli_app, ["batch", "list.txt", "--out", str(tmp_path / "r.jsonl"), "--csv", str(table),
                                          "--quiet"])
    assert result.exit_code == 1, result.output
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert sorted(r["file"] for r in rows) == sorted("'" + n for n in names)
    assert all(r["message"].startswith("'") and r["status"] == "error" for r in rows)


def test_a_dates_csv_that_is_no_regular_file_is_refused_without_waiting_on_it(clips, tmp_path):
    """``--dates FIFO`` (before: waited forever for a writer)."""
    os.mkfifo(tmp_path / "dates.csv")
    done = subprocess.run([sys.executable, "-m", "fusion.cli", "batch", str(clips[0].parent), "--out",
                           str(tmp_path / "r.jsonl"), "--dates", str(tmp_path / "dates.csv"), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"{tmp_path / 'dates.csv'}: not a regular file" in " ".join(done.stderr.split())
    assert not (tmp_path / "r.jsonl").exists()
