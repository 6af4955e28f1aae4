"""The bad-input matrix through ``fusion batch``: each input gives a sound report or a clear error record.

Decode-level errors of single files (missing, directory, header only, image, unreadable) and the
container matrix's signal equality are pinned in tests/test_audio.py; here the same kinds of input
go through the whole pipeline in one batch, which must go on, write nothing beside the inputs and
leave no temp file. The 30-minute case checks the memory of everything but STT (a full STT run of
it is left to ``bench/batch.py --long``).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf
from test_audio import encode

from fusion.audio import SAMPLE_RATE, load_audio
from fusion.batch import read_results, run_batch
from fusion.pipeline import load_pipeline

CLIP = "speech/ko_transcribed/pma/pma00004.flac"

GOOD = {  # name: what its report must show
    "stereo48k.wav": "speech", "mono8k.wav": "speech", "clip.mp3": "speech", "clip.m4a": "speech",
    "clip.ogg": "speech", "clip.webm": "speech", "nan_inf.wav": "repaired", "silence.wav": "silent",
}
BAD = {  # name: words the error message must hold
    "empty.wav": "empty file", "truncated.wav": "truncated", "notes.wav": "not a readable audio file",
    "zero.wav": "no audio samples", "missing.wav": "file not found",
}


def build_matrix(folder: Path, clip) -> None:
    for name, container, codec, rate, layout in [
        ("stereo48k.wav", "wav", "pcm_s16le", 48000, "stereo"), ("mono8k.wav", "wav", "pcm_s16le", 8000, "mono"),
        ("clip.mp3", "mp3", "libmp3lame", 44100, "stereo"), ("clip.m4a", "mp4", "aac", 44100, "stereo"),
        ("clip.ogg", "ogg", "libopus", 48000, "mono"), ("clip.webm", "webm", "libopus", 48000, "stereo"),
    ]:
        encode(clip, folder / name, container, codec, rate, layout)
    broken = clip.samples.copy()
    broken[1000:1400], broken[5000] = np.nan, np.inf
    sf.write(folder / "nan_inf.wav", broken, SAMPLE_RATE, subtype="FLOAT")
    sf.write(folder / "silence.wav", np.zeros(3 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "full.wav", clip.samples, SAMPLE_RATE)
    whole = (folder / "full.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    (folder / "full.wav").unlink()
    (folder / "notes.wav").write_text("오늘의 일기: 이건 오디오가 아니다\n" * 20, encoding="utf-8")
    sf.write(folder / "zero.wav", np.zeros(0, np.float32), SAMPLE_RATE)


@pytest.mark.slow
def test_every_bad_input_is_a_report_or_a_clear_error_record(shared_data, tmp_path, monkeypatch):
    inputs, out_dir, temp = tmp_path / "in", tmp_path / "out", tmp_path / "tmp"
    for d in (inputs, out_dir, temp):
        d.mkdir()
    build_matrix(inputs, load_audio(shared_data / CLIP))
    names = sorted([*GOOD, *BAD])
    (tmp_path / "list.txt").write_text("\n".join(f"in/{n}" for n in names), encoding="utf-8")
    before = sorted(p.name for p in inputs.iterdir())
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    summary = run_batch(tmp_path / "list.txt", out_dir / "r.jsonl", csv_path=out_dir / "r.csv", progress=False)

    assert (summary.done, summary.failed) == (len(GOOD), len(BAD))
    records = {Path(r["file"]).name: r for r in read_results(out_dir / "r.jsonl")}
    assert sorted(records) == names
    for name, problem in BAD.items():
        error = records[name]["error"]
        assert error["kind"] == "bad_input" and problem in error["message"] and name in error["message"], error
    for name, expected in GOOD.items():
        report = records[name]["report"]
        assert 2.9 < report["duration_s"] < 8.0, name
        if expected == "silent":
            assert report["transcript"] == "" and any("silent" in w for w in report["warnings"])
        else:
            assert report["transcript"].strip() and report["sentences"], f"{name}: words expected, got {report}"
        if expected == "repaired":
            assert any("NaN/infinite" in w for w in report["warnings"])
    assert sorted(p.name for p in inputs.iterdir()) == before, "nothing written beside the inputs"
    assert sorted(p.name for p in out_dir.iterdir()) == ["r.csv", "r.jsonl"] and not any(temp.iterdir())


def thirty_minutes(shared_data: Path, path: Path) -> float:
    """A 30-minute diary of real Korean clips with a second of silence after each."""
    clips = sorted((shared_data / "speech" / "ko_transcribed").glob("*/*.flac"))[:40]
    pieces, total, gap, i = [], 0, np.zeros(SAMPLE_RATE, np.float32), 0
    while total < 30 * 60 * SAMPLE_RATE:
        x, _ = sf.read(clips[i % len(clips)], dtype="float32")
        pieces += [x, gap]
        total, i = total + x.size + gap.size, i + 1
    samples = np.concatenate(pieces)[: 30 * 60 * SAMPLE_RATE]
    sf.write(path, samples, SAMPLE_RATE)
    return samples.nbytes


@pytest.mark.slow
def test_a_30_minute_recording_stays_within_bounded_memory(shared_data, tmp_path, config):
    """Decode, voiced spans, prosody, MFCC and the voice model over 30 minutes: peak RSS growth under 1 GB.

    The float32 audio alone is 115 MB; the framed copies librosa makes of a whole signal would be 0.5 GB each.
    """
    path = tmp_path / "long.flac"
    audio_bytes = thirty_minutes(shared_data, path)
    pipeline = load_pipeline(config)
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak, running = [base], True

    def watch():
        while running:
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        report = pipeline.analyze(path, transcript="오늘은 산책을 했다. 기분이 좋았다. " * 150, baseline="male")
    finally:
        running = False
        watcher.join()
    assert report.duration_s == pytest.approx(1800, abs=0.1) and len(report.sentences) == 300
    grown = (peak[0] - base) / 2**20
    assert grown < 1000, f"peak RSS grew by {grown:.0f} MB for {audio_bytes / 2**20:.0f} MB of audio"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.flac"]
