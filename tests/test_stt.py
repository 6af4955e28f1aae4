"""fusion.stt: the embedded base model reassembled and verified, both engines giving one Transcript type."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import struct
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from fusion.audio import audio_from_array, load_audio
from fusion.errors import ModelError
from fusion.levels import voiced_spans
from fusion.model_files import EMBEDDED_SHA256, embedded_model_dir, openai_checkpoint, read_ctranslate2
from fusion.stt import (
    STTEngine,
    Transcript,
    Word,
    chunk_bounds,
    has_speech,
    load_engine,
    speech_clips,
    transcribe_long,
)

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ["pfa/pfa00004.flac", "pma/pma00010.flac", "pfl/pfl00006.flac"]
# Measured: corpus CER 0.04-0.1 per clip on these (spaces and punctuation removed); 0.35 leaves room
# for CPU/int8 differences while still failing if the model, language or decoding breaks.
MAX_CER = 0.35


def norm(text: str) -> str:
    return re.sub(r"[\s\W_]+", "", text)


def cer(hyp: str, ref: str) -> float:
    hyp, ref = norm(hyp), norm(ref)
    prev = list(range(len(ref) + 1))
    for i, h in enumerate(hyp, 1):
        cur = [i]
        for j, r in enumerate(ref, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (h != r)))
        prev = cur
    return prev[-1] / max(len(ref), 1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("fusion-cache")
    monkeypatch_module.setenv("FUSION_CACHE_DIR", str(root))
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def engine(cache, config) -> STTEngine:
    return load_engine(config.stt)


@pytest.fixture(scope="module")
def transcripts(shared_data):
    with (shared_data / "speech/ko_transcribed/labels.csv").open(encoding="utf-8") as fh:
        return {row["path"]: row["transcript"] for row in csv.DictReader(fh)}


def test_embedded_model_is_reassembled_once_and_verified(cache, config):
    sha = EMBEDDED_SHA256
    model_dir = embedded_model_dir(sha)
    assert model_dir == cache / "whisper-base"
    names = sorted(p.name for p in model_dir.iterdir())
    assert names == ["config.json", "model.bin", "model.bin.verified.json", "tokenizer.json", "vocabulary.txt"]
    marker = json.loads((model_dir / "model.bin.verified.json").read_text())
    assert marker["sha256"] == sha and marker["size"] == (model_dir / "model.bin").stat().st_size
    mtime = (model_dir / "model.bin").stat().st_mtime_ns
    assert embedded_model_dir(sha) == model_dir
    assert (model_dir / "model.bin").stat().st_mtime_ns == mtime, "a verified model must be reused, not rebuilt"


def test_the_pinned_hash_is_that_of_the_model_the_engines_load(cache):
    """EMBEDDED_SHA256 is a fact of the shipped parts: the joined model.bin hashes to it."""
    digest = hashlib.sha256((embedded_model_dir() / "model.bin").read_bytes()).hexdigest()
    assert digest == EMBEDDED_SHA256


def test_wrong_hash_is_a_model_error_naming_the_file(tmp_path):
    with pytest.raises(ModelError, match=r"model\.bin.*sha256"):
        embedded_model_dir("0" * 64, root=tmp_path)
    assert not (tmp_path / "whisper-base" / "model.bin").exists()
    assert not list((tmp_path / "whisper-base").glob("*.tmp")), "no partial file may be left behind"


def test_a_damaged_cached_model_is_rebuilt(tmp_path, config):
    sha = EMBEDDED_SHA256
    model = embedded_model_dir(sha, root=tmp_path) / "model.bin"
    model.write_bytes(b"damaged")
    assert embedded_model_dir(sha, root=tmp_path) / "model.bin" == model
    assert model.stat().st_size > 100_000_000


def test_engine_is_loaded_once_per_configuration(engine, config):
    assert load_engine(config.stt) is engine
    assert isinstance(engine, STTEngine) and engine.name == "faster-whisper" and engine.model_id == "embedded:base"


def test_faster_whisper_base_transcribes_korean(engine, shared_data, transcripts):
    for clip in CLIPS:
        audio = load_audio(shared_data / "speech/ko_transcribed" / clip)
        result = engine.transcribe(audio.samples)
        assert isinstance(result, Transcript) and result.language == "ko"
        assert cer(result.text, transcripts[clip]) < MAX_CER, (clip, result.text)
        words = result.words
        assert words and all(isinstance(w, Word) for w in words)
        assert "".join(w.text for w in words).strip() == result.text
        assert all(0 <= w.start <= w.end <= audio.duration + 0.05 for w in words)
        assert all(a.start <= b.start for a, b in zip(words, words[1:]))


@pytest.mark.slow
def test_language_auto_detects_korean(cache, config, shared_data, transcripts):
    """[stt] language = "auto": Whisper's own language detection names a Korean clip Korean and transcribes it."""
    auto = load_engine(config.with_updates(stt={"language": "auto"}).stt)
    assert auto is not load_engine(config.stt)
    clip = CLIPS[1]
    result = auto.transcribe(load_audio(shared_data / "speech/ko_transcribed" / clip).samples)
    assert result.language == "ko"
    assert cer(result.text, transcripts[clip]) < MAX_CER, result.text
    # detected, not assumed: an English clip (RAVDESS: "Kids are talking by the door") is English
    english = auto.transcribe(load_audio(shared_data / "speech/ravdess/Actor_01/03-01-01-01-01-01-01.flac").samples)
    assert english.language == "en" and "door" in english.text.lower(), english.text


def test_silence_gives_an_empty_transcript(engine):
    for samples in (np.zeros(16000 * 5, np.float32), np.random.default_rng(1).normal(0, 1e-4, 16000 * 5)):
        assert not has_speech(samples, -50.0)
        result = engine.transcribe(samples.astype(np.float32))
        assert result.segments == () and result.text == "" and result.words == ()


@pytest.fixture(scope="module")
def room_tone(shared_data, config) -> np.ndarray:
    """Real room tone, no speech: the lead-in of a RAVDESS clip before the actor speaks, looped to 8 s and raised to
    -30 dBFS (above [stt] speech_floor_dbfs, so it is decoded)."""
    clip = load_audio(shared_data / "speech/ravdess/Actor_01/03-01-01-01-01-01-01.flac")
    tone = clip.samples[: int((voiced_spans(clip, config.audio_input)[0][0] - 0.1) * 16000)]
    noise = np.tile(tone, 8 * 16000 // len(tone) + 1)[: 8 * 16000]
    noise = (noise * 10 ** (-30 / 20) / np.sqrt(np.mean(noise**2))).astype(np.float32)
    assert has_speech(noise, config.stt.speech_floor_dbfs)
    return noise


@pytest.mark.parametrize("engine_name", [pytest.param("faster-whisper", marks=pytest.mark.slow), "openai-whisper"])
def test_room_tone_gives_no_words_from_either_engine(cache, config, room_tone, engine_name):
    """Decoded without VAD (greedy, to be quick), the noise makes Whisper invent Korean phrases; the no-speech rule
    ([stt] no_speech_threshold and logprob_threshold) and the looping-text rule (compression_ratio_threshold) drop
    them: openai-whisper's own, and for faster-whisper's batched pipeline, which applies neither, ours (with both
    rules off the words come out)."""
    stt = config.stt.model_copy(update={"engine": engine_name, "vad_filter": False, "beam_size": 1})
    assert load_engine(stt).transcribe(room_tone).words == ()
    if engine_name == "faster-whisper":
        rule_off = stt.model_copy(update={"no_speech_threshold": 1.0, "compression_ratio_threshold": 1e9})
        assert load_engine(rule_off).transcribe(room_tone).words, "the rule, not the noise, keeps the words out"


@pytest.mark.slow
def test_openai_whisper_engine_returns_a_transcript(tmp_path, config, shared_data):
    """A 1-layer, 64-wide Whisper with random weights, built here: its text is garbage by design.

    What is pinned is the engine's plumbing (checkpoint loading with weights_only,
    decoding an array, word timestamps, mapping into ``Transcript``), not accuracy;
    openai-whisper has no offline weights on this machine.
    """
    torch = pytest.importorskip("torch")
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
        n_vocab=51865, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1,
    )
    torch.manual_seed(0)
    model = Whisper(dims)
    with torch.no_grad():  # some of Whisper's parameters start as torch.empty: give every one a value
        for param in model.parameters():
            torch.nn.init.normal_(param, std=0.02)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, tmp_path / "tiny.pt")
    cfg = config.stt.model_copy(
        update={"engine": "openai-whisper", "model": str(tmp_path / "tiny.pt"), "beam_size": 1, "temperature": (0.0,)}
    )
    engine = load_engine(cfg)
    assert engine.name == "openai-whisper"
    audio = load_audio(shared_data / "speech/ko_transcribed" / CLIPS[0])
    result = engine.transcribe(audio.samples[: 16000 * 3])
    assert isinstance(result, Transcript) and result.engine == "openai-whisper" and result.language == "ko"
    assert all(isinstance(w, Word) and 0 <= w.start <= w.end <= 3.0 for w in result.words)
    assert all(0 <= s.start <= s.end <= 3.0 for s in result.segments)


def test_unknown_model_is_a_model_error(config, tmp_path):
    with pytest.raises(ModelError, match="cannot load openai-whisper model"):
        load_engine(config.stt.model_copy(update={"engine": "openai-whisper", "model": str(tmp_path / "none.pt")}))
    with pytest.raises(ModelError, match="cannot load faster-whisper model"):
        load_engine(config.stt.model_copy(update={"model": str(tmp_path)}))


def test_chunk_bounds_cut_in_pauses_and_cover_the_recording():
    speech = [(0.5, 4.0), (5.0, 9.0), (10.0, 14.0), (15.0, 29.0)]
    bounds = chunk_bounds(speech, 30.0, 10.0)
    assert bounds[0] == (0.0, 9.5) and bounds[1] == (9.5, 14.5)
    assert bounds[-1][1] == 30.0 and all(a < b for a, b in bounds)
    assert all(b - a <= 10.0 for a, b in bounds)
    assert all(prev[1] == nxt[0] for prev, nxt in zip(bounds, bounds[1:]))
    assert chunk_bounds(speech, 30.0, 60.0) == [(0.0, 30.0)]


@pytest.mark.slow
def test_a_long_recording_is_transcribed_in_chunks_on_one_clock(engine, shared_data, transcripts):
    """Three clips with pauses, transcribed in chunks shorter than the whole: words land on the recording's clock."""
    clips = [load_audio(shared_data / "speech/ko_transcribed" / clip).samples for clip in CLIPS]
    gap = np.zeros(16000, np.float32)
    joined = np.concatenate([clips[0], gap, clips[1], gap, clips[2]])
    speech = voiced_spans(audio_from_array(joined, 16000))
    max_s = max(len(c) for c in clips) / 16000 + 1.5
    assert len(chunk_bounds(speech, joined.size / 16000, max_s)) >= 2
    whole = transcribe_long(engine, joined, speech, max_s)
    reference = "".join(transcripts[clip] for clip in CLIPS)
    assert cer(whole.text, reference) < MAX_CER, whole.text
    words = whole.words
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))
    third_starts = (len(clips[0]) + len(clips[1]) + 2 * len(gap)) / 16000
    assert words[-1].start > third_starts and words[-1].end <= joined.size / 16000 + 0.05


def test_speech_clips_cover_the_voiced_spans_in_whisper_windows():
    """Each clip fits one 30 s window and reaches at most ``pad`` past its speech; every voiced second is in a clip."""
    speech = [(1.0, 9.0), (10.0, 24.0), (25.0, 29.5), (40.0, 75.0), (90.0, 91.0)]
    clips = speech_clips(speech, 100.0, 0.2)
    assert all(0 < b - a <= 30.0 for a, b in clips)
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(clips, clips[1:]))
    assert clips[0] == pytest.approx((0.8, 24.2)) and clips[-1] == pytest.approx((89.8, 91.2))
    for s, e in speech:
        covered = sum(max(0.0, min(e, b) - max(s, a)) for a, b in clips)
        assert covered == pytest.approx(e - s)
    assert speech_clips([], 100.0, 0.2) == []


@pytest.mark.slow
@pytest.mark.parametrize("clips", ["silero", "voiced"])
def test_batched_decoding_hears_the_sample_as_one_window_at_a_time_does(config, cache, clips):
    """The 25 s sample through the batched engine (clips from Silero's VAD, or from the voiced spans) and the
    sequential one at beam 5 (the settings before batching): the same words at the same times, half of them
    within 0.1 s (measured at beam 5 on both: median 0.01 s, the farthest word 0.48 s, where a pause ends)."""
    audio = load_audio(ROOT / "samples" / "diary_ko.flac")
    speech = voiced_spans(audio, config.audio_input)
    batched = load_engine(config.stt.model_copy(update={"clips": clips}))
    sequential = load_engine(config.stt.model_copy(update={"batch_size": 0, "beam_size": 5}))
    one, other = (transcribe_long(e, audio.samples, speech, config.stt.max_chunk_s) for e in (batched, sequential))
    assert cer(one.text, other.text) < 0.05, (one.text, other.text)
    same = [(a, b) for a, b in zip(one.words, other.words) if norm(a.text) == norm(b.text)]
    assert len(same) >= 0.9 * len(other.words)
    apart = [max(abs(a.start - b.start), abs(a.end - b.end)) for a, b in same]
    assert np.median(apart) < 0.1 and max(apart) < 1.0, apart


def _ct2_string(text: str) -> bytes:
    return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"


def _ct2_variable(name: str, array: np.ndarray, type_id: int) -> bytes:
    header = _ct2_string(name) + struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape)
    return header + struct.pack("<BI", type_id, array.nbytes) + array.tobytes()


def test_ctranslate2_reader_resolves_aliases_and_dequantizes_int8(tmp_path):
    weight = np.array([[0.5, -1.0], [2.0, 4.0]], np.float32)
    scale = (127 / np.abs(weight).max(axis=1)).astype(np.float32)
    quantized = np.round(weight * scale[:, None]).astype(np.int8)
    half = np.array([1.5, -2.25], np.float16)
    blob = (struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, 3)
            + _ct2_variable("lin/bias", half, 4) + _ct2_variable("lin/weight", quantized, 1)
            + _ct2_variable("lin/weight_scale", scale, 0) + struct.pack("<I", 1) + _ct2_string("proj/weight")
            + _ct2_string("lin/weight"))
    (tmp_path / "model.bin").write_bytes(blob)
    spec, variables = read_ctranslate2(tmp_path / "model.bin")
    assert spec == "WhisperSpec" and sorted(variables) == ["lin/bias", "lin/weight", "proj/weight"]
    assert variables["lin/bias"].dtype == np.float16 and variables["lin/bias"].tolist() == [1.5, -2.25]
    np.testing.assert_allclose(variables["lin/weight"], weight, rtol=0.01)
    assert variables["proj/weight"] is variables["lin/weight"]


@pytest.mark.slow
def test_embedded_model_converted_for_openai_whisper_transcribes_korean(cache, config, shared_data, transcripts):
    """The embedded weights mapped onto openai-whisper give real Korean text: a wrong mapping gives garbage."""
    checkpoint = openai_checkpoint()
    assert checkpoint.parent == cache / "whisper-base-openai" and not list(checkpoint.parent.glob("*.tmp"))
    mtime = checkpoint.stat().st_mtime_ns
    assert openai_checkpoint() == checkpoint and checkpoint.stat().st_mtime_ns == mtime, "converted once, then reused"
    cfg = config.stt.model_copy(update={"engine": "openai-whisper", "model": "embedded:base", "beam_size": 1,
                                        "temperature": (0.0,)})
    engine = load_engine(cfg)
    assert engine.name == "openai-whisper" and engine.model_id == "embedded:base"
    heads = engine.model.alignment_heads.to_dense().nonzero().tolist()
    assert heads == json.loads((embedded_model_dir() / "config.json").read_text())[
        "alignment_heads"]
    audio = load_audio(shared_data / "speech/ko_transcribed" / CLIPS[0])
    result = engine.transcribe(audio.samples)
    assert result.language == "ko" and cer(result.text, transcripts[CLIPS[0]]) < MAX_CER, result.text
    assert result.words and all(0 <= w.start <= w.end <= audio.duration + 0.05 for w in result.words)


def test_stt_settings_are_chosen_on_speakers_the_reported_figure_never_heard(shared_data, tmp_path):
    """bench/stt_split.py: the dev speakers (where [stt] decoding settings are chosen) and the test speakers differ."""
    out = tmp_path / "split.csv"
    subprocess.run([sys.executable, str(ROOT / "bench" / "stt_split.py"), str(out),
                    "--data", str(shared_data / "speech" / "ko_transcribed")], check=True, capture_output=True)
    with out.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    speakers = {split: {r["speaker"] for r in rows if r["split"] == split} for split in ("dev", "test")}
    assert speakers["dev"] and speakers["test"] and not speakers["dev"] & speakers["test"]
    assert len(rows) == 93 and all(Path(r["path"]).is_file() for r in rows)
    counts = {split: sum(r["split"] == split for r in rows) for split in ("dev", "test")}
    assert speakers == {"dev": {"pma"}, "test": {"pfa", "pfl"}} and counts == {"dev": 31, "test": 62}, (
        "the split [stt]'s dev and test figures were measured on")
