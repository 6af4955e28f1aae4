"""Per-stage wall time of one recording under the shipped settings and the previous ones, in one process.

    python bench/pipeline.py [RECORDING | --minutes M] [--warm-runs 3] [--dev STT.csv]

Each side is a ``Pipeline`` with its models loaded once; "cold" is its first analysis (model
loading shown apart as ``load``), "warm" the median of the following runs, taken in turns
(previous, shipped, shipped, previous, ...) so a change of machine load falls on both alike.
``--minutes`` builds a diary of that length from one speaker's real clips (``bench/batch.py``).
``--dev`` also runs ``fusion eval stt`` on that CSV's dev split (``bench/stt_split.py``) under
each side's STT settings: CER and decoding time. The ratio is shipped over previous.
The last line is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch
from batch import build_diary, speakers

from fusion.audio import SAMPLE_RATE, load_audio
from fusion.config import default_config
from fusion.pipeline import Pipeline

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "diary_ko.flac"
# The STT settings before batched decoding: one 30 s window after the other at beam 5, Silero's VAD.
PREVIOUS_STT = {"batch_size": 0, "beam_size": 5}


def timings(recording: Path, warm_runs: int) -> dict:
    """Load time, cold and warm per-stage seconds of both sides, warm runs taken in turns."""
    shipped_cfg = default_config()
    sides = {"previous": shipped_cfg.with_updates(stt=PREVIOUS_STT), "shipped": shipped_cfg}
    out = {}
    for name, cfg in sides.items():
        t0 = time.perf_counter()
        pipeline = Pipeline(cfg)
        load_s = round(time.perf_counter() - t0, 3)
        out[name] = {"pipeline": pipeline, "load_s": load_s, "cold": pipeline.analyze(recording).timings, "runs": []}
    order = list(sides)
    for i in range(warm_runs):
        for name in order if i % 2 == 0 else order[::-1]:
            out[name]["runs"].append(out[name]["pipeline"].analyze(recording).timings)
    for side in out.values():
        side.pop("pipeline")
        runs = side.pop("runs")
        side["warm"] = {stage: statistics.median(run[stage] for run in runs) for stage in side["cold"]}
    return out


def dev_stt(csv_path: Path) -> dict:
    """CER, WER and decoding time on the dev split under each side's STT settings."""
    from fusion.eval.text import eval_stt

    out = {}
    for name, update in (("previous", PREVIOUS_STT), ("shipped", {})):
        result = eval_stt(csv_path, split="dev", progress=False, **update)
        out[name] = {k: round(result[k], 4) for k in ("cer", "wer", "decode_s", "audio_s")}
    return out


def ratio(new: float, old: float) -> float:
    return new / old if old else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--minutes", type=float, help="a diary this long built from real clips instead")
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--dev", type=Path, help="bench/stt_split.py's CSV: CER on its dev split for each side")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fusion-bench-pipeline-") as tmp:
        recording = args.recording
        if args.minutes:
            recording = Path(tmp) / f"diary_{args.minutes:g}min.flac"
            diary = build_diary(speakers()["ko_transcribed/pma"], args.minutes * 60, random.Random(2))
            sf.write(recording, diary, SAMPLE_RATE)
        duration = load_audio(recording).duration
        sides = timings(recording, args.warm_runs)

    old, new = sides["previous"], sides["shipped"]
    print(f"recording: {recording.name}, {duration:.1f} s of audio; torch threads {torch.get_num_threads()}; "
          f"{platform.processor() or platform.machine()}; previous = shipped with [stt] {PREVIOUS_STT}")
    print(f"model load (once per process): previous {old['load_s']:.2f} s, shipped {new['load_s']:.2f} s")
    print(f"{'stage':<10} {'prev cold':>9} {'prev warm':>9} {'new cold':>9} {'new warm':>9} {'warm ratio':>10} "
          f"{'new RTF':>8}")
    for stage in [*new["warm"], "total"]:
        if stage == "total":
            row = [sum(side[k].values()) for side in (old, new) for k in ("cold", "warm")]
        else:
            row = [side[k][stage] for side in (old, new) for k in ("cold", "warm")]
        print(f"{stage:<10} {row[0]:>9.3f} {row[1]:>9.3f} {row[2]:>9.3f} {row[3]:>9.3f} "
              f"{ratio(row[3], row[1]):>10.2f} {row[3] / duration:>8.4f}")
    figures = {"bench": "pipeline", "recording": recording.name, "audio_s": round(duration, 3),
               "previous_stt": PREVIOUS_STT, **sides,
               "warm_stt_ratio": round(ratio(new["warm"]["stt"], old["warm"]["stt"]), 3)}
    if args.dev:
        dev = dev_stt(args.dev)
        for name, r in dev.items():
            print(f"dev split STT, {name}: CER {r['cer']:.4f}  WER {r['wer']:.4f}  decoding {r['decode_s']:.1f} s "
                  f"for {r['audio_s']:.1f} s")
        print(f"dev decoding time ratio {ratio(dev['shipped']['decode_s'], dev['previous']['decode_s']):.2f}, "
              f"CER {dev['shipped']['cer'] - dev['previous']['cer']:+.4f}")
        figures["dev_stt"] = dev
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
