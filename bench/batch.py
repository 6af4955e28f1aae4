"""``fusion batch`` throughput and peak memory on one-minute diaries built from real Korean speech.

    python bench/batch.py [--n 50] [--rounds 5] [--long [--ngram]] [--engines 3]

Builds N one-minute diaries (one speaker's clips from shared/data/speech with short pauses) in a
temp folder, then, in one run:
  * ``fusion batch`` over all of them as a subprocess: wall time with process start and model
    load, and the peak RSS of that process;
  * batch engine vs single calls, side by side: in this process, with the same loaded models and
    a warm-up first, the files go in ``--rounds`` groups through ``analyze_many`` (the batch
    engine) and through single ``analyze()`` calls, alternating which goes first, so a change of
    machine load falls on both alike; the ratio of the summed times is the batch speed-up;
  * ``--long``: one 30-minute diary through ``fusion batch`` (STT included) under the previous STT settings
    (``[stt] batch_size = 0``, ``beam_size = 5``) and the shipped ones: wall time, peak RSS and each stage's
    seconds (from the reports), shipped over previous; with ``--ngram`` also under
    ``[text] architecture = "ngram-lr"``: what the default e5 text model costs over the n-gram one;
  * ``--engines K``: faster-whisper vs openai-whisper (a checkpoint converted from the same
    embedded weights) on K of the diaries (``bench/whisper_engines.py``).
The last line is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from whisper_engines import vm_hwm_kb

from fusion.audio import SAMPLE_RATE
from fusion.batch.results import read_results
from fusion.config import default_config, default_config_path

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech"
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


def fusion_batch(inputs: Path, out: Path, config: Path | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of this one ``fusion batch`` process (``config``: its ``--config``), and its
    summary line.

    The peak is the child's own ``VmHWM``, sampled until it exits: its ``ru_maxrss`` would also
    count this (model-holding) process, which Linux carries into a child across fork and exec.
    """
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        options = ["--config", str(config)] if config else []
        proc = subprocess.Popen([sys.executable, "-m", "fusion.cli", "batch", str(inputs), "--out", str(out), "-q",
                                 *options], stdout=subprocess.DEVNULL, stderr=err)
        peak_kb = 0
        while proc.poll() is None:
            peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        err.seek(0)
        text = err.read().decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise SystemExit(f"fusion batch failed ({proc.returncode}): {text}")
    return wall, peak_kb / 1024, text.splitlines()[-1]


def variant(folder: Path, name: str, old: str, new: str, base: Path | None = None) -> Path:
    """The default config (or ``base``) with one line changed, written as ``name``.toml in ``folder``."""
    path = folder / f"{name}.toml"
    text = (base or default_config_path()).read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def stage_seconds(results: Path) -> dict[str, float]:
    """Each stage's seconds summed over the reports of a results file."""
    total: dict[str, float] = {}
    for record in read_results(results):
        for stage, seconds in record["report"]["timings"].items():
            total[stage] = total.get(stage, 0.0) + seconds
    return total


def side_by_side(paths: list[Path], rounds: int) -> dict:
    """Summed seconds of the batch engine and of single ``analyze()`` calls over the same files, interleaved."""
    from fusion import analyze, analyze_many

    analyze(paths[0])  # models loaded and warm for both sides
    batch_s = singles_s = stt_s = 0.0
    groups = [list(g) for g in np.array_split(np.array(paths, dtype=object), rounds) if len(g)]
    for r, group in enumerate(groups):
        for side in (("batch", "singles") if r % 2 == 0 else ("singles", "batch")):
            t0 = time.perf_counter()
            if side == "batch":
                results = list(analyze_many(group))
                assert all(res.ok for res in results), [res.message for res in results if not res.ok]
                batch_s += time.perf_counter() - t0
            else:
                stt_s += sum(analyze(p).timings["stt"] for p in group)
                singles_s += time.perf_counter() - t0
    return {"rounds": len(groups), "batch_s": batch_s, "singles_s": singles_s, "singles_stt_share": stt_s / singles_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="one-minute diaries (50 in the issue)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating groups for the side-by-side comparison")
    parser.add_argument("--long", action="store_true", help="also one 30-minute diary through fusion batch")
    parser.add_argument("--ngram", action="store_true", help="with --long: the 30-minute diary also with the "
                                                              "n-gram text model, for what the e5 one costs")
    parser.add_argument("--engines", type=int, default=0, metavar="K",
                        help="also faster-whisper vs openai-whisper on K of the diaries")
    args = parser.parse_args()
    figures: dict = {"bench": "batch", "n": args.n, "diary_s": 60.0}

    with tempfile.TemporaryDirectory(prefix="fusion-bench-batch-") as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        paths = build_diaries(tmp / "in", args.n)
        audio_s = 60.0 * args.n
        wall, peak_mb, line = fusion_batch(tmp / "in", tmp / "out.jsonl")
        print(f"fusion batch: {args.n} x 1 min in {wall:.1f} s (process start and model load included), "
              f"RTF {wall / audio_s:.3f}, {audio_s / wall:.1f} min of diary per wall minute, "
              f"peak RSS {peak_mb:.0f} MB (target <= 1536)")
        print(f"  {line}")
        figures.update(batch_wall_s=round(wall, 2), batch_rtf=round(wall / audio_s, 4),
                       batch_peak_rss_mb=round(peak_mb))

        ab = side_by_side(paths, args.rounds)
        speedup = ab["singles_s"] / ab["batch_s"]
        print(f"same process, same models, {ab['rounds']} alternating rounds over the {args.n} files: "
              f"batch engine {ab['batch_s']:.1f} s (RTF {ab['batch_s'] / audio_s:.3f}), "
              f"single analyze() calls {ab['singles_s']:.1f} s (RTF {ab['singles_s'] / audio_s:.3f}, "
              f"STT {ab['singles_stt_share']:.0%}); batch speed-up {speedup:.2f}x")
        figures.update(ab_rounds=ab["rounds"], ab_batch_s=round(ab["batch_s"], 2),
                       ab_singles_s=round(ab["singles_s"], 2), ab_batch_rtf=round(ab["batch_s"] / audio_s, 4),
                       ab_singles_rtf=round(ab["singles_s"] / audio_s, 4),
                       singles_stt_share=round(ab["singles_stt_share"], 3), batch_speedup=round(speedup, 3))

        if args.long:
            (tmp / "long").mkdir()
            rng, clips = random.Random(1), speakers()["ko_transcribed/pfa"]
            sf.write(tmp / "long" / "diary_30min.flac", build_diary(clips, 1800.0, rng), SAMPLE_RATE)
            shipped_batch = f"\nbatch_size = {default_config().stt.batch_size}\nclips"
            previous = variant(tmp, "previous", shipped_batch, "\nbatch_size = 0\nclips")
            previous = variant(tmp, "previous", "\nbeam_size = 3\n", "\nbeam_size = 5\n", previous)
            wall_old, peak_old, _ = fusion_batch(tmp / "long", tmp / "long_previous.jsonl", previous)
            wall, peak_mb, line = fusion_batch(tmp / "long", tmp / "long.jsonl")
            old, new = stage_seconds(tmp / "long_previous.jsonl"), stage_seconds(tmp / "long.jsonl")
            print(f"30-minute diary through fusion batch, previous ([stt] batch 0, beam 5) -> shipped: "
                  f"{wall_old:.1f} -> {wall:.1f} s (x{wall / wall_old:.2f}), RTF {wall / 1800:.3f}, "
                  f"peak RSS {peak_old:.0f} -> {peak_mb:.0f} MB (target <= 1200)")
            for stage in new:
                ratio = new[stage] / max(old[stage], 1e-9)
                print(f"  {stage:<10} {old[stage]:8.2f} -> {new[stage]:8.2f} s  x{ratio:.2f}")
            figures.update(long_wall_s=round(wall, 2), long_rtf=round(wall / 1800, 4), long_peak_rss_mb=round(peak_mb),
                           long_previous_wall_s=round(wall_old, 2), long_previous_peak_rss_mb=round(peak_old),
                           long_stages=new, long_previous_stages=old)
            if args.ngram:
                ngram = variant(tmp, "ngram", 'architecture = "e5-finetune"', 'architecture = "ngram-lr"')
                wall_ng, peak_ng, _ = fusion_batch(tmp / "long", tmp / "long_ngram.jsonl", ngram)
                print(f"  the same, [text] architecture = ngram-lr: {wall_ng:.1f} s, peak RSS {peak_ng:.0f} MB; "
                      f"the e5 text model costs {wall - wall_ng:+.1f} s and {peak_mb - peak_ng:+.0f} MB")
                figures.update(long_ngram_wall_s=round(wall_ng, 2), long_ngram_peak_rss_mb=round(peak_ng))

        if args.engines:
            from whisper_engines import ENGINES, compare, report

            engines = compare(paths[: args.engines], None)
            report(f"faster-whisper vs openai-whisper, same embedded weights, on {args.engines} of these diaries",
                   engines)
            for engine in ENGINES:
                engines[engine].pop("texts")
            figures["engines"] = engines

    print(json.dumps(figures))


if __name__ == "__main__":
    main()
