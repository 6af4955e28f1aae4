"""``fusion batch`` throughput and peak memory on one-minute diaries built from real Korean speech.

    python bench/batch.py [--n 50] [--long]

Builds N one-minute diaries (one speaker's clips from shared/data/speech with short pauses) in a
temp folder, then, one run each:
  * ``fusion batch`` as a subprocess (model loading included), its wall time and peak RSS;
  * the same files through single ``analyze()`` calls in this process (models loaded once), summed;
  * ``--long``: one 30-minute diary through ``fusion batch`` (STT included), its peak RSS.
faster-whisper vs openai-whisper on the same weights is reported as not measured (see the text).
The last line is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from fusion.audio import SAMPLE_RATE

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech"
OPENAI_WHISPER_NOTE = ("faster-whisper vs openai-whisper: not measured. The embedded model exists only as CTranslate2 "
                       "weights; rebuilding an openai-whisper checkpoint of the same size from them needs a full "
                       "parameter-name and layout mapping (fused attention projections, int8/float16 storage) that "
                       "was not feasible in the time, and downloading openai's own base.pt is not allowed here.")


def speakers() -> dict[str, list[Path]]:
    clips: dict[str, list[Path]] = {}
    for corpus in ("ko_transcribed", "ko_emotional"):
        with open(SPEECH / corpus / "labels.csv", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                clips.setdefault(f"{corpus}/{row['speaker']}", []).append(SPEECH / corpus / row["path"])
    return clips


def build_diary(clips: list[Path], seconds: float, rng: random.Random) -> np.ndarray:
    """Real clips of one speaker, in random order, 0.4-1.2 s of silence between them, cut to ``seconds``."""
    pieces, total = [], 0
    while total < seconds * SAMPLE_RATE:
        x, rate = sf.read(rng.choice(clips), dtype="float32")
        assert rate == SAMPLE_RATE
        gap = np.zeros(int(rng.uniform(0.4, 1.2) * SAMPLE_RATE), np.float32)
        pieces += [x, gap]
        total += x.size + gap.size
    return np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)]


def build_diaries(folder: Path, n: int, seconds: float = 60.0) -> list[Path]:
    rng = random.Random(0)
    by_speaker = speakers()
    names = sorted(by_speaker)
    paths = []
    for i in range(n):
        path = folder / f"diary_{i:03d}.flac"
        sf.write(path, build_diary(by_speaker[names[i % len(names)]], seconds, rng), SAMPLE_RATE)
        paths.append(path)
    return paths


def fusion_batch(inputs: Path, out: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the ``fusion batch`` process, and its summary line."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fusion.cli", "batch", str(inputs), "--out", str(out), "-q"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"fusion batch failed: {done.stderr}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak_mb, done.stderr.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="one-minute diaries (50 in the issue)")
    parser.add_argument("--long", action="store_true", help="also one 30-minute diary through fusion batch")
    args = parser.parse_args()
    figures: dict = {"bench": "batch", "n": args.n, "diary_s": 60.0}

    with tempfile.TemporaryDirectory(prefix="fusion-bench-batch-") as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        paths = build_diaries(tmp / "in", args.n)
        audio_s = 60.0 * args.n
        wall, peak_mb, line = fusion_batch(tmp / "in", tmp / "out.jsonl")
        print(f"fusion batch: {args.n} x 1 min in {wall:.1f} s (process start and model load included), "
              f"RTF {wall / audio_s:.3f}, {audio_s / 60 / (wall / 60):.1f} min of diary per wall minute, "
              f"peak RSS {peak_mb:.0f} MB (target <= 1536)")
        print(f"  {line}")
        figures.update(batch_wall_s=round(wall, 2), batch_rtf=round(wall / audio_s, 4), batch_peak_rss_mb=round(peak_mb))

        from fusion import analyze

        t0 = time.perf_counter()
        first = analyze(paths[0])
        load_and_first = time.perf_counter() - t0
        singles, stt = [load_and_first], first.timings["stt"]
        for path in paths[1:]:
            t0 = time.perf_counter()
            stt += analyze(path).timings["stt"]
            singles.append(time.perf_counter() - t0)
        total = sum(singles)
        print(f"single analyze() calls: sum {total:.1f} s (first call with model load {load_and_first:.1f} s), "
              f"RTF {total / audio_s:.3f}, STT {stt / total:.0%} of it; batch speed-up {total / wall:.2f}x")
        figures.update(singles_sum_s=round(total, 2), singles_rtf=round(total / audio_s, 4),
                       singles_stt_share=round(stt / total, 3), batch_speedup=round(total / wall, 3))

        if args.long:
            (tmp / "long").mkdir()
            rng, clips = random.Random(1), speakers()["ko_transcribed/pfa"]
            sf.write(tmp / "long" / "diary_30min.flac", build_diary(clips, 1800.0, rng), SAMPLE_RATE)
            wall, peak_mb, line = fusion_batch(tmp / "long", tmp / "long.jsonl")
            print(f"30-minute diary through fusion batch: {wall:.1f} s, RTF {wall / 1800:.3f}, "
                  f"peak RSS of all batch runs so far {peak_mb:.0f} MB")
            figures.update(long_wall_s=round(wall, 2), long_peak_rss_mb=round(peak_mb))

    print(OPENAI_WHISPER_NOTE)
    figures["openai_whisper"] = "not measured: no openai-whisper checkpoint of the embedded weights"
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
