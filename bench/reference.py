"""A seed-style naive script vs our pipeline: same recordings, same models, one run each.

    python bench/reference.py [RECORDINGS ...] [--clips 5]

The reference does what a first script does: models reloaded for every file, the audio decoded
three times (for STT, the voice model, prosody) with a 16 kHz copy written to a temp folder for
STT, a regex sentence split, one text-model call per sentence and the voice model recomputing the
recording's MFCC for every sentence. "non-STT" is all wall time except the STT engine's own
``transcribe`` calls (model loading included, once for ours, per file for the reference); ours is then
run over the same recordings again, loaded, for what each further recording of a batch or a service costs.
The last line is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from fusion import combine
from fusion.audio import load_audio
from fusion.config import Config, default_config
from fusion.pipeline import Pipeline
from fusion.stt import FasterWhisperEngine
from fusion.text.model import diary_text_scores, load_text_model
from fusion.voice import model as voice_model
from fusion.voice import prosody as prosody_stage

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "diary_ko.flac"
KO_EMOTIONAL = ROOT.parent / "shared" / "data" / "speech" / "ko_emotional"


def default_inputs(clips: int) -> list[Path]:
    with open(KO_EMOTIONAL / "labels.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    return [SAMPLE] + [KO_EMOTIONAL / r["path"] for r in rows[:: max(1, len(rows) // clips)][:clips]]


def reference_one(path: Path, cfg: Config, tmp: Path) -> tuple[dict, float]:
    """The naive script for one file: (its result, seconds inside STT transcribe)."""
    stt = FasterWhisperEngine(cfg.stt)                                     # models reloaded per file
    text_model = load_text_model.__wrapped__(cfg.text, cfg.labels.ko)
    audio_model = voice_model.load_audio_model_from(cfg.audio.model, cfg)

    y1 = load_audio(path).samples                                          # decode 1: for STT, via a copy
    copy = tmp / f"{path.stem}_16k.wav"
    sf.write(copy, y1, 16000)
    from_copy = load_audio(copy).samples
    t0 = time.perf_counter()
    heard = stt.transcribe(from_copy)
    stt_s = time.perf_counter() - t0
    sentences = [(part.strip(), seg.start, seg.end) for seg in heard.segments
                 for part in re.split(cfg.sentences.regex, seg.text) if len(part.strip()) >= cfg.sentences.min_chars]
    probs = np.array([text_model.predict_proba([s])[0] for s, _, _ in sentences]).reshape(-1, len(cfg.labels.ko))
    _, text_mean = diary_text_scores(probs)

    y2, _ = librosa.load(path, sr=16000)                                   # decode 2: the voice model
    measured = prosody_stage.prosody(y2, 16000)
    base = prosody_stage.resolve_baseline(cfg.audio.baseline, cfg, pitch_hz=measured.pitch_hz)
    whole = [(0.0, len(y2) / 16000)]                                       # the whole file, silences and all
    voice = [audio_model.predict(y2, [(a, b)], whole, base).spans[0] for _, a, b in sentences]  # one call a sentence
    diary = audio_model.predict(y2, [], whole, base).diary
    y3, _ = librosa.load(path, sr=16000)                                   # decode 3: prosody
    prosody = [prosody_stage.prosody(y3, 16000, (a, b)).for_report(base) for _, a, b in sentences]
    observations = [combine.Observation(probs[i], voice[i], prosody[i], sentence=i) for i in range(len(sentences))]
    alerts = combine.mismatch_alerts(combine.Observation(text_mean, diary, measured.for_report(base)),
                                     observations, cfg)
    fused = combine.fuse(text_mean if sentences else None, diary, cfg)
    copy.unlink()
    return {"sentences": len(sentences), "alerts": [a.kind for a in alerts], "top": int(np.argmax(fused.en))}, stt_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", nargs="*", type=Path)
    parser.add_argument("--clips", type=int, default=5, help="ko_emotional test clips beside the sample")
    args = parser.parse_args()
    inputs = args.recordings or default_inputs(args.clips)
    cfg = default_config()
    audio_s = sum(load_audio(p).duration for p in inputs)

    with tempfile.TemporaryDirectory(prefix="fusion-reference-") as tmp:
        t0, ref_stt = time.perf_counter(), 0.0
        for path in inputs:
            ref_stt += reference_one(path, cfg, Path(tmp))[1]
        ref_total = time.perf_counter() - t0

    t0 = time.perf_counter()
    pipeline = Pipeline(cfg)
    load_s = time.perf_counter() - t0
    reports = [pipeline.analyze(p) for p in inputs]
    ours_total = time.perf_counter() - t0
    ours_stt = sum(r.timings["stt"] for r in reports)
    t0 = time.perf_counter()
    again = [pipeline.analyze(p) for p in inputs]
    warm_other = time.perf_counter() - t0 - sum(r.timings["stt"] for r in again)

    ref_other, ours_other = ref_total - ref_stt, ours_total - ours_stt
    print(f"{len(inputs)} recordings, {audio_s:.1f} s of audio; same models ({cfg.stt.model}, "
          f"text {cfg.text.model}, audio {cfg.audio.model})")
    print(f"{'':<10} {'STT s':>8} {'non-STT s':>10} {'total s':>8}")
    print(f"{'reference':<10} {ref_stt:>8.2f} {ref_other:>10.2f} {ref_total:>8.2f}")
    print(f"{'ours':<10} {ours_stt:>8.2f} {ours_other:>10.2f} {ours_total:>8.2f}   (model load {load_s:.2f} s, once)")
    print(f"speed-up: non-STT {ref_other / ours_other:.1f}x, whole job {ref_total / ours_total:.2f}x; "
          f"ours: RTF {ours_total / audio_s:.3f}, STT {ours_stt / ours_total:.0%} of the time")
    print(f"the same recordings again through the loaded pipeline: non-STT {warm_other:.2f} s, "
          f"{ref_other / warm_other:.1f}x the reference's (what each further recording of a batch or service costs)")
    print(json.dumps({
        "bench": "reference", "recordings": len(inputs), "audio_s": round(audio_s, 2),
        "reference": {"stt_s": round(ref_stt, 3), "non_stt_s": round(ref_other, 3), "total_s": round(ref_total, 3)},
        "ours": {"stt_s": round(ours_stt, 3), "non_stt_s": round(ours_other, 3), "total_s": round(ours_total, 3),
                 "load_s": round(load_s, 3), "loaded_non_stt_s": round(warm_other, 3)},
        "speedup_non_stt": round(ref_other / ours_other, 2), "speedup_non_stt_loaded": round(ref_other / warm_other, 2),
        "speedup_total": round(ref_total / ours_total, 3),
        "ours_rtf": round(ours_total / audio_s, 4), "ours_stt_share": round(ours_stt / ours_total, 3),
    }))


if __name__ == "__main__":
    main()
