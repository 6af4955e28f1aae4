"""How far STT-timed sentences spill outside the clip they belong to, before and after snapping to speech.

    python bench/sentence_timing.py [--sets 10] [--clips 3] [--gap 1.0]

Clips of one speaker from shared/data/speech/ko_transcribed are joined with ``--gap`` seconds of
silence (their true boundaries are known), transcribed once by the configured STT, and split into
sentences twice: timed by Whisper's words alone ("words") and snapped to the voiced spans
("snapped", what the pipeline does). Each sentence belongs to the clip it overlaps most; its spill
is the time it reaches outside that clip. The last line is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
from itertools import islice
from pathlib import Path

import numpy as np

from fusion.audio import audio_from_array, load_audio
from fusion.config import default_config
from fusion.levels import voiced_spans
from fusion.sentences import sentences_from_transcript
from fusion.stt import load_engine

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech" / "ko_transcribed"


def joined_sets(n_sets: int, n_clips: int) -> list[list[Path]]:
    """Consecutive clips of each speaker in turn, ``n_clips`` a set."""
    with (DATA / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_speaker: dict[str, list[Path]] = {}
    for row in rows:
        by_speaker.setdefault(row["speaker"], []).append(DATA / row["path"])
    groups = [[clips[i : i + n_clips] for i in range(0, len(clips) - n_clips + 1, n_clips)]
              for clips in by_speaker.values()]
    interleaved = (g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g))
    return list(islice(interleaved, n_sets))


def spill(sentences, bounds: list[tuple[float, float]]) -> list[float]:
    out = []
    for s in sentences:
        a, b = max(bounds, key=lambda c: min(c[1], s.end) - max(c[0], s.start))
        out.append(max(0.0, a - s.start) + max(0.0, s.end - b))
    return out


def summary(values: list[float]) -> dict:
    v = np.asarray(values)
    return {"sentences": int(v.size), "mean_spill_s": round(float(v.mean()), 3),
            "max_spill_s": round(float(v.max()), 3), "over_0.1s": int((v > 0.1).sum())}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return (line.split(":", 1)[1].strip()
                    + (" (AVX-512)" if "avx512f" in Path("/proc/cpuinfo").read_text() else ""))
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=10)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--gap", type=float, default=1.0)
    args = parser.parse_args()
    config = default_config()
    engine = load_engine(config.stt)
    gap = np.zeros(int(args.gap * 16000), np.float32)
    words, snapped = [], []
    for clips in joined_sets(args.sets, args.clips):
        parts, bounds, t = [], [], 0.0
        for clip in clips:
            audio = load_audio(clip)
            parts += [audio.samples, gap]
            bounds.append((t, t + audio.duration))
            t += audio.duration + args.gap
        joined = audio_from_array(np.concatenate(parts), 16000, source="joined")
        transcript = engine.transcribe(joined.samples)
        words += spill(sentences_from_transcript(transcript, config.sentences), bounds)
        speech = voiced_spans(joined, config.audio_input)
        snapped += spill(sentences_from_transcript(transcript, config.sentences, speech), bounds)
    result = {"cpu": cpu_name(), "sets": args.sets, "clips": args.clips,
              "gap_s": args.gap, "words": summary(words), "snapped": summary(snapped)}
    for name in ("words", "snapped"):
        print(f"{name:8s} " + "  ".join(f"{k} {v}" for k, v in result[name].items()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
