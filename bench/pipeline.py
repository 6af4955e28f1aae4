"""Per-stage wall time and real-time factor of one recording, cold and warm, in one process.

    python bench/pipeline.py [RECORDING] [--warm-runs 3]

"cold" is the first analysis in a fresh process (model loading shown apart as
``load``); "warm" is the median of the following runs with the models loaded.
The real-time factor is wall time over audio duration (lower is faster).
The last line is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from fusion.audio import load_audio
from fusion.config import default_config
from fusion.pipeline import Pipeline

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "diary_ko.flac"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    pipeline = Pipeline(default_config())
    load_s = time.perf_counter() - t0
    duration = load_audio(args.recording).duration
    cold = pipeline.analyze(args.recording).timings
    warm_runs = [pipeline.analyze(args.recording).timings for _ in range(args.warm_runs)]
    stages = list(cold)
    warm = {stage: statistics.median(run[stage] for run in warm_runs) for stage in stages}

    print(f"recording: {args.recording.name}, {duration:.1f} s of audio; torch threads {torch.get_num_threads()}; "
          f"{platform.processor() or platform.machine()}")
    print(f"model load (once per process): {load_s:.2f} s")
    print(f"{'stage':<10} {'cold s':>8} {'warm s':>8} {'warm RTF':>9}")
    for stage in stages:
        print(f"{stage:<10} {cold[stage]:>8.3f} {warm[stage]:>8.3f} {warm[stage] / duration:>9.4f}")
    cold_total, warm_total = sum(cold.values()), sum(warm.values())
    print(f"{'total':<10} {cold_total:>8.3f} {warm_total:>8.3f} {warm_total / duration:>9.4f}")
    stt_share = warm.get("stt", 0.0) / warm_total if warm_total else 0.0
    voice_vs_stt = warm.get("audio", 0.0) / warm["stt"] if warm.get("stt") else float("nan")
    print(f"voice stage / STT stage, warm: {voice_vs_stt:.1%} (target <= 15%)")
    print(f"cold RTF (with model load) {(cold_total + load_s) / duration:.3f}; warm RTF {warm_total / duration:.3f}; "
          f"STT share of warm time {stt_share:.0%}")
    print(json.dumps({
        "bench": "pipeline", "recording": args.recording.name, "audio_s": round(duration, 3),
        "load_s": round(load_s, 3), "cold": cold, "warm": warm,
        "cold_rtf": round((cold_total + load_s) / duration, 4), "warm_rtf": round(warm_total / duration, 4),
        "stt_share": round(stt_share, 3), "voice_vs_stt": round(voice_vs_stt, 4),
    }))


if __name__ == "__main__":
    main()
