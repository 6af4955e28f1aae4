"""fusion.batch: one crash-safe JSONL line per input, resume by content + version, errors as records, engines.

The files a batch reads and writes besides its inputs (results, CSV, dates) are test_batch_files.py's."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from difflib import SequenceMatcher
from pathlib import Path

import pytest
from require import unavailable
from typer.testing import CliRunner

from fusion import analyze, analyze_many
from fusion.batch import Worker, content_key, read_results, run_batch
from fusion.batch.engine import collect_inputs
from fusion.batch.process import share_cores
from fusion.cli import app as cli_app
from fusion.config import default_config_path
from fusion.dates import file_time
from fusion.errors import InputError
from fusion.report import DiaryReport
from fusion.voice.prosody import NeutralBaseline


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def assert_one_line_each(out: Path, files: list[str]) -> list[dict]:
    data = out.read_bytes()
    assert data.endswith(b"\n"), "no torn last line"
    records = [json.loads(line) for line in data.splitlines()]
    assert sorted(r["file"] for r in records) == sorted(files), "every input exactly once"
    return records


@pytest.mark.slow
def test_batch_writes_reports_error_records_and_csv_then_resumes(clips, tmp_path):
    folder = clips[0].parent
    (folder / "notes.wav").write_text("이건 오디오가 아니다\n", encoding="utf-8")
    (folder / "empty.flac").write_bytes(b"")
    listed = tmp_path / "list.txt"
    listed.write_text("\n".join(str(p) for p in clips[:2]) + f"\nnotes.wav\n{folder}/empty.flac\n{folder}/gone.wav\n",
                      encoding="utf-8")
    listed.rename(folder / "list.txt")
    before = listing(folder)
    out, table = tmp_path / "res" / "results.jsonl", tmp_path / "res" / "summary.csv"

    summary = run_batch(folder / "list.txt", out, csv_path=table, progress=False)
    assert (summary.done, summary.failed, summary.skipped, summary.total) == (2, 3, 0, 5) and summary.any_failed
    names = [str(p) for p in clips[:2]] + [str(folder / n) for n in ("notes.wav", "empty.flac", "gone.wav")]
    records = {Path(r["file"]).name: r for r in assert_one_line_each(out, names)}
    for clip in clips[:2]:
        report = DiaryReport.model_validate(records[clip.name]["report"])
        assert report.transcript and report.transcript_source == "stt"
    problems = {"notes.wav": "not a readable audio file", "empty.flac": "empty file", "gone.wav": "file not found"}
    for name, problem in problems.items():
        assert records[name]["status"] == "error" and records[name]["error"]["kind"] == "bad_input"
        assert problem in records[name]["error"]["message"] and name in records[name]["error"]["message"]

    rows = {Path(r["file"]).name: r for r in csv.DictReader(table.open(encoding="utf-8"))}
    assert set(rows) == set(records)
    ok = rows[clips[0].name]
    assert ok["status"] == "ok" and float(ok["duration_s"]) > 1 and ok["text_top"] and ok["voice_top"]
    assert rows["gone.wav"]["error_kind"] == "bad_input" and rows["gone.wav"]["status"] == "error"
    assert listing(folder) == before, "nothing written beside the inputs"
    assert listing(out.parent) == ["results.jsonl", "summary.csv"], "no temp files left"

    again = run_batch(folder / "list.txt", out, progress=False)
    assert (again.done, again.failed, again.skipped, again.skipped_failed) == (0, 0, 5, 3)
    (folder / "gone.wav").write_bytes(clips[2].read_bytes())
    retried = run_batch(folder / "list.txt", out, csv_path=table, retry_failed=True, progress=False)
    assert (retried.done, retried.failed, retried.skipped) == (1, 2, 2)
    records = {Path(r["file"]).name: r for r in assert_one_line_each(out, names)}
    assert records["gone.wav"]["status"] == "ok"
    assert len(list(csv.DictReader(table.open(encoding="utf-8")))) == 5


@pytest.mark.slow
def test_a_model_or_config_update_rescores_and_replaces_the_old_line(clips, tmp_path, config):
    out = tmp_path / "r.jsonl"
    run_batch([clips[0]], out, progress=False)
    updated = config.with_updates(alerts={"depressed_score": 1.5})
    assert updated.fingerprint() != config.fingerprint()
    assert config.with_updates(batch={"workers": 3}).fingerprint() == config.fingerprint(), \
        "scheduling is not a version"
    service_edit = config.with_updates(server={"tokens": {"carol": "a-new-token"}}, batch={"prefetch": 1})
    kept = run_batch([clips[0]], out, config=service_edit, progress=False)
    assert (kept.done, kept.skipped) == (0, 1), "a server token or a batch setting does not re-score a finished batch"
    summary = run_batch([clips[0]], out, config=updated, progress=False)
    assert summary.done == 1 and summary.skipped == 0
    (record,) = assert_one_line_each(out, [str(clips[0])])
    assert record["key"] == content_key(str(clips[0]), updated.fingerprint())


def test_another_baseline_or_an_edited_baseline_json_rescores(clips, tmp_path, config):
    """The baseline asked for is part of a result's key, a baseline JSON by its content (before: a rerun with
    ``--gender male`` skipped every file and kept reports measured against another baseline)."""
    out, personal = tmp_path / "r.jsonl", tmp_path / "mine.json"
    NeutralBaseline.from_config("female", config.audio).save_json(personal)

    def run(baseline):
        summary = run_batch([clips[0]], out, baseline=baseline, progress=False)
        (record,) = assert_one_line_each(out, [str(clips[0])])
        return summary.done, record["report"]["voice"]["baseline"]

    assert run(None)[0] == 1
    assert run("male") == (1, "male") and run("male") == (0, "male")
    assert run(str(personal))[0] == 1 and run(str(personal))[0] == 0
    personal.write_text(personal.read_text(encoding="utf-8").replace('"pitch_hz": 235.6', '"pitch_hz": 200.0'),
                        encoding="utf-8")
    assert run(str(personal))[0] == 1, "an edited baseline JSON re-scores"


@pytest.mark.slow
def test_kill_9_mid_batch_then_resume_loses_and_duplicates_nothing(clips, tmp_path):
    listed = tmp_path / "list.txt"
    listed.write_text("\n".join(map(str, clips)) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "results.jsonl"
    cmd = [sys.executable, "-m", "fusion.cli", "batch", str(listed), "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the batch ended before it could be killed: {proc.stderr.read().decode()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = read_results(out)
    assert 2 <= len(first) < len(clips)
    assert out.read_bytes().endswith(b"\n")
    with out.open("ab") as fh:  # what a kill inside a write could leave: a torn line
        fh.write(b'{"file": "/torn", "key": "x", "sta')

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"skipped {len(first)}" in done.stderr
    records = assert_one_line_each(out, [str(p) for p in clips])
    assert records[: len(first)] == first, "earlier lines untouched"
    assert all(r["status"] == "ok" for r in records)
    assert listing(out.parent) == ["results.jsonl"]


def test_workers_sharing_a_machine_split_its_cores_without_changing_result_keys(config):
    import torch

    threads = torch.get_num_threads()
    try:
        shared = share_cores(config, 1)
        assert shared.stt.cpu_threads == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert config.stt.cpu_threads == 0, "the caller's config is not changed"
    assert shared.fingerprint() == config.fingerprint(), "thread counts do not re-score a finished batch"
    pinned = config.with_updates(stt={"cpu_threads": 3})
    assert share_cores(pinned, 1).stt.cpu_threads == 3, "an explicit [stt] cpu_threads wins"
    torch.set_num_threads(threads)
    assert share_cores(config, None) is config


@pytest.mark.slow
def test_analyze_many_streams_results_in_order_and_batches_text_across_files(clips, config):
    worker = Worker(config.with_updates(batch={"files_per_chunk": 3}))
    calls = []
    model = worker.pipeline.text_model
    original = model.predict_proba
    model.predict_proba = lambda texts: calls.append(len(texts)) or original(texts)
    try:
        sources = [clips[0], clips[1], clips[0].parent / "missing.wav", clips[2]]
        results = list(analyze_many(sources, config=worker.config))
    finally:
        model.predict_proba = original
    assert [r.file for r in results] == [str(p) for p in sources]
    assert [r.ok for r in results] == [True, True, False, True]
    assert results[2].error_kind == "bad_input" and "file not found" in results[2].message
    assert len(calls) == 1 and calls[0] == sum(len(r.report.sentences) for r in results if r.ok) >= 3
    single = analyze(clips[1])
    assert results[1].report.model_dump(exclude={"timings"}) == single.model_dump(exclude={"timings"})


@pytest.mark.slow
def test_local_worker_processes_give_the_same_lines(clips, tmp_path, config):
    """Two worker processes write the reports a single analyze() gives for the same files: the same labels and
    alert kinds, the same scores up to what int8 kernels on one thread (instead of all cores) may round apart."""
    out = tmp_path / "r.jsonl"
    summary = run_batch(clips[:2], out, workers=2, config=config.with_updates(batch={"files_per_chunk": 1}),
                        progress=False)
    assert summary.done == 2
    records = assert_one_line_each(out, [str(p) for p in clips[:2]])
    for record in records:
        assert record["status"] == "ok"
        batch, single = DiaryReport.model_validate(record["report"]), analyze(record["file"])
        assert batch.source == single.source == record["file"] and batch.duration_s == single.duration_s
        assert batch.recorded_at == single.recorded_at == file_time(record["file"]), "the date crosses processes"
        assert SequenceMatcher(None, batch.transcript, single.transcript).ratio() > 0.8, (batch.transcript,
                                                                                         single.transcript)
        assert ((batch.text.top, batch.voice.top, batch.fused.top_en)
                == (single.text.top, single.voice.top, single.fused.top_en))
        assert [a.kind for a in batch.alerts] == [a.kind for a in single.alerts]
        for label, p in single.voice.probs.items():
            assert batch.voice.probs[label] == pytest.approx(p, abs=0.05), label
        assert batch.voice.neutral_prob == pytest.approx(single.voice.neutral_prob, abs=0.05)
        for label, p in single.fused.en.items():
            assert batch.fused.en[label] == pytest.approx(p, abs=0.1), label


@pytest.mark.slow
def test_an_unexpected_exception_is_an_internal_error_record_and_the_batch_goes_on(clips, tmp_path, monkeypatch):
    """A bug inside the worker (not a bad input) becomes that file's error record, kind ``internal``, with the
    exception's class and message, and the other files are analysed. No real recording triggers such a bug (the
    ones known are fixed), so two pipeline stages are patched to raise for one named file each: one while the
    file is heard (decode, STT), one in the batched model stage, where the failing file must be isolated from
    the others of its chunk."""
    from fusion.pipeline import Pipeline

    hear, voice = Pipeline.hear, Pipeline._voice

    def broken_hear(self, source, **kw):
        if str(getattr(source, "source", source)).endswith(clips[1].name):
            raise RuntimeError("stt blew up")
        return hear(self, source, **kw)

    def broken_voice(self, audio, *args):
        if audio.source.endswith(clips[2].name):
            raise ZeroDivisionError("voice stage divided by zero")
        return voice(self, audio, *args)

    monkeypatch.setattr(Pipeline, "hear", broken_hear)
    monkeypatch.setattr(Pipeline, "_voice", broken_voice)
    out = tmp_path / "r.jsonl"
    summary = run_batch(clips[:4], out, progress=False)
    assert (summary.done, summary.failed) == (2, 2) and summary.any_failed
    records = {Path(r["file"]).name: r for r in assert_one_line_each(out, [str(p) for p in clips[:4]])}
    assert records[clips[1].name]["error"] == {"kind": "internal", "message": "RuntimeError: stt blew up"}
    assert records[clips[2].name]["error"] == {"kind": "internal",
                                               "message": "ZeroDivisionError: voice stage divided by zero"}
    for clip in (clips[0], clips[3]):  # before and after the failures, in the failing chunk
        assert records[clip.name]["status"] == "ok" and records[clip.name]["report"]["transcript"]


@pytest.mark.slow
def test_ray_engine_on_a_local_instance(clips, tmp_path, config):
    try:
        import ray
    except ImportError:
        unavailable("ray is not installed (the test extras install it)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        sources = clips[:3] + [clips[0].parent / "missing.wav"]
        out = tmp_path / "ray.jsonl"
        summary = run_batch(sources, out, csv_path=tmp_path / "ray.csv", engine="ray",
                            config=config.with_updates(batch={"files_per_chunk": 2, "ray_actors": 2}), progress=False)
    finally:
        ray.shutdown()
    assert (summary.done, summary.failed) == (3, 1)
    records = {r["file"]: r for r in assert_one_line_each(out, [str(p) for p in sources])}
    assert records[str(sources[-1])]["error"]["kind"] == "bad_input"
    assert records[str(clips[0])]["report"]["recorded_at"] == file_time(clips[0]).isoformat().replace("+00:00", "Z")
    local = analyze(clips[0])
    remote = DiaryReport.model_validate(records[str(clips[0])]["report"]).transcript
    # The same words, not the same bytes: int8 kernels split over other thread counts may round differently.
    assert SequenceMatcher(None, remote, local.transcript).ratio() > 0.8, (remote, local.transcript)


def test_identical_files_each_get_their_own_line_and_a_moved_file_is_recognised(clips, tmp_path):
    folder = tmp_path / "same"
    folder.mkdir()
    copies = [folder / name for name in ("a.flac", "b.flac", "c.flac")]
    for path in copies:
        path.write_bytes(clips[0].read_bytes())
    (folder / "folder.wav").mkdir()  # a directory named like a recording is an input too
    out = tmp_path / "r.jsonl"
    summary = run_batch(folder, out, csv_path=tmp_path / "r.csv", progress=False)
    assert (summary.done, summary.failed, summary.skipped) == (3, 1, 0)
    records = {Path(r["file"]).name: r
               for r in assert_one_line_each(out, [*map(str, copies), str(folder / "folder.wav")])}
    assert "is a directory" in records["folder.wav"]["error"]["message"]
    reports = [records[p.name]["report"] for p in copies]
    assert [r["source"] for r in reports] == [str(p) for p in copies]
    assert len({r["transcript"] for r in reports}) == 1, "analysed once, told for each path"
    assert len(list(csv.DictReader((tmp_path / "r.csv").open(encoding="utf-8")))) == 4

    copies[2].rename(folder / "d.flac")
    again = run_batch(folder, out, progress=False)
    assert (again.done, again.skipped, again.audio_s) == (1, 3, 0.0), "the moved file's content is known: no analysis"
    records = {Path(r["file"]).name: r for r in read_results(out)}
    assert records["d.flac"]["report"]["source"] == str(folder / "d.flac")


def test_a_batch_input_longer_than_the_limit_is_an_error_record(tmp_path, config):
    import odd_audio

    long = odd_audio.joined_mp3(tmp_path / "long.mp3", rest_s=40)
    out = tmp_path / "r.jsonl"
    summary = run_batch([long], out, config=config.with_updates(audio_input={"max_duration_s": 20.0}), progress=False)
    (record,) = assert_one_line_each(out, [str(long)])
    assert summary.failed == 1 and record["error"]["kind"] == "bad_input"
    assert ("recording too long: decoding passed 2" in record["error"]["message"]
            and "long.mp3" in record["error"]["message"])


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_worker_processes_exit_when_the_batch_is_killed(clips, tmp_path, config):
    listed = tmp_path / "list.txt"
    listed.write_text("\n".join(map(str, clips)) + "\n", encoding="utf-8")
    toml = tmp_path / "one.toml"
    toml.write_text(re.sub(r"(?m)^files_per_chunk = \d+", "files_per_chunk = 1",
                           default_config_path().read_text(encoding="utf-8")), encoding="utf-8")
    out = tmp_path / "r.jsonl"
    cmd = [sys.executable, "-m", "fusion.cli", "batch", str(listed), "--out", str(out), "--workers", "2", "-q",
           "--config", str(toml)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and not (out.exists() and out.read_bytes().count(b"\n")):
        time.sleep(0.1)
    assert proc.poll() is None, f"the batch ended before it could be killed: {proc.stderr.read().decode()}"
    workers = _children(proc.pid)
    assert len(workers) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _running(workers):
        time.sleep(0.2)
    assert not _running(workers), f"orphan workers still running: {_running(workers)}"


def _running(pids: set[int]) -> set[int]:
    def state(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return "gone"
    return {pid for pid in pids if state(pid) not in ("Z", "gone")}


def test_inputs_whose_names_are_not_utf8_get_their_lines_and_rows_losslessly(clips, tmp_path):
    """A recording and a non-audio file named with a byte that is not UTF-8: a report and an error record whose
    ``file`` gives the name's bytes back, CSV rows holding those bytes, and a rerun that finds both lines (before:
    exit 2 with no line at all, on every rerun)."""
    folder = tmp_path / "odd"
    folder.mkdir()
    good, bad = folder / os.fsdecode(b"rec\xff.flac"), folder / os.fsdecode(b"notes\xfe.wav")
    good.write_bytes(clips[0].read_bytes())
    bad.write_text("not audio", encoding="utf-8")
    out, table = tmp_path / "r.jsonl", tmp_path / "s.csv"
    result = CliRunner().invoke(cli_app, ["batch", str(folder), "--out", str(out), "--csv", str(table), "--quiet"])
    assert result.exit_code == 1, result.output
    records = {os.fsencode(r["file"]): r for r in assert_one_line_each(out, [str(good), str(bad)])}
    assert records[os.fsencode(good)]["status"] == "ok" and records[os.fsencode(bad)]["status"] == "error"
    assert os.fsencode(good) in table.read_bytes() and os.fsencode(bad) in table.read_bytes()
    again = run_batch(folder, out, progress=False)
    assert again.skipped == 2


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="/dev/zero and FIFOs")
def test_special_files_among_the_inputs_are_error_records_and_the_batch_ends(tmp_path):
    """A FIFO in the folder and /dev/zero in a list file: an error record each, read by nobody (before: the
    content hash read them, and the batch hung forever with no line)."""
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "pipe.wav")
    listed = folder / "list.txt"
    listed.write_text(f"{folder / 'pipe.wav'}\n/dev/zero\n", encoding="utf-8")
    out = tmp_path / "r.jsonl"
    for spec in (folder, listed):
        batch = subprocess.run([sys.executable, "-m", "fusion.cli", "batch", str(spec), "--out", str(out), "--quiet"],
                               capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
        assert batch.returncode == 1, batch.stderr
    for record in assert_one_line_each(out, [str(folder / "pipe.wav"), "/dev/zero"]):
        assert record["error"]["message"] == f"{record['file']}: not a regular file"


def test_a_glob_names_each_file_once_though_a_folder_links_back_up(tmp_path):
    """``in/**/*.flac`` over a folder holding links to its parent and to itself: the file once, and the expansion
    ends (before: one line per alias, ``sub/up/sub/a.flac`` and on, or no end at all with two such links)."""
    sub = tmp_path / "in" / "sub"
    sub.mkdir(parents=True)
    (sub / "a.flac").write_bytes(b"")
    (sub / "up").symlink_to(sub.parent)
    (sub.parent / "self").symlink_to(sub.parent)
    assert collect_inputs(f"{tmp_path}/in/**/*.flac") == [str(sub / "a.flac")]
    assert collect_inputs(str(tmp_path / "in")) == [str(sub / "a.flac")], "as the folder itself gives"
    (sub / "diary[1].flac").write_bytes(b"")
    assert collect_inputs(str(sub / "diary[1].flac")) == [str(sub / "diary[1].flac")], "a name, not a pattern"
    for nothing in (f"{tmp_path}/none/*.flac", f"{tmp_path}/in/**"):
        with pytest.raises(InputError, match="the pattern matches no file"):
            collect_inputs(nothing)


def test_a_list_file_may_name_files_whose_names_are_not_utf8(tmp_path):
    """Names as the file system holds them (before: "'utf-8' codec can't decode byte 0xff", naming no file)."""
    listed = tmp_path / "list.txt"
    listed.write_bytes(b"a.flac\n\xff.wav\n")
    assert collect_inputs(listed) == [str(tmp_path / "a.flac"), str(tmp_path / os.fsdecode(b"\xff.wav"))]
