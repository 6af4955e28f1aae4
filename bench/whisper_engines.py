"""faster-whisper vs openai-whisper: the same embedded base weights, the same audio, the same decoding.

    python bench/whisper_engines.py [--n 10] [--diary-s 60] [--threads T]

openai-whisper runs the embedded faster-whisper base model converted to an openai checkpoint
(``fusion.model_files``), so both engines hold the same weights: faster-whisper in the
configured compute type (int8), openai-whisper in float32 (PyTorch on CPU). Each engine runs
in its own fresh process (its peak RSS is that process's ru_maxrss; "cpu s" its user+system
time while decoding, steadier than wall time on a shared CPU), loads its model once and
transcribes the first 10 s of the first input as a warm-up before the timed pass. Decoding is as equal as
the two libraries allow: the configured language, beam size, temperature fallback and
thresholds, no initial prompt, condition_on_previous_text false, word timestamps, no VAD
(openai-whisper has none). Inputs: N clips of ko_transcribed spread over its speakers, and a
diary of about ``--diary-s`` seconds made by joining other clips with 0.5 s pauses.
CER/WER are corpus rates from ``fusion.eval.text.error_rates``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from fusion.audio import SAMPLE_RATE, load_audio
from fusion.config import STTConfig, default_config
from fusion.eval.text import error_rates

ROOT = Path(__file__).resolve().parents[1]
KO_TRANSCRIBED = ROOT.parent / "shared" / "data" / "speech" / "ko_transcribed"
ENGINES = ("faster-whisper", "openai-whisper")
PAUSE_S = 0.5
WARMUP_S = 10


def bench_config(engine: str, threads: int) -> STTConfig:
    """The configured [stt] section on the embedded model, VAD off, with ``threads`` CPU threads."""
    return default_config().stt.model_copy(update={"engine": engine, "model": "embedded:base", "vad_filter": False,
                                                   "initial_prompt": "", "condition_on_previous_text": False,
                                                   "cpu_threads": threads})


def run_engine(engine: str, paths: list[str], threads: int) -> dict:
    """In a fresh process: load ``engine``, warm it up on the first input's start, time a pass over all inputs."""
    import torch

    from fusion.stt import load_engine

    torch.set_num_threads(threads)
    cfg = bench_config(engine, threads)
    samples = [load_audio(p).samples for p in paths]
    start = time.perf_counter()
    stt = load_engine(cfg)
    load_s = time.perf_counter() - start
    stt.transcribe(samples[0][: WARMUP_S * SAMPLE_RATE])
    texts, start, cpu_start = [], time.perf_counter(), _cpu_s()
    for x in samples:
        texts.append(stt.transcribe(x).text)
    decode_s, cpu_s = time.perf_counter() - start, _cpu_s() - cpu_start
    return {"load_s": load_s, "decode_s": decode_s, "decode_cpu_s": cpu_s, "texts": texts,
            "peak_rss_mb": vm_hwm_kb() / 1024,  # not ru_maxrss: Linux carries the parent's into a spawned child
            "compute_type": cfg.compute_type if engine == "faster-whisper" else "float32"}


def vm_hwm_kb(pid: int | str = "self") -> int:
    """A process's peak resident memory so far (kB, Linux ``VmHWM``); 0 once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def compare(paths: list[Path], references: list[str] | None, threads: int | None = None) -> dict:
    """Both engines over ``paths`` (each in its own process): times, RTF, peak RSS, and CER/WER vs ``references``."""
    threads = threads or os.cpu_count() or 1
    audio_s = sum(sf.info(str(p)).duration for p in paths)
    cfg = bench_config(ENGINES[0], threads)
    out = {"n": len(paths), "audio_s": audio_s, "threads": threads,
           "decoding": {"language": cfg.language, "beam_size": cfg.beam_size, "temperature": list(cfg.temperature),
                        "condition_on_previous_text": False, "initial_prompt": None, "vad_filter": False,
                        "word_timestamps": cfg.word_timestamps}}
    for engine in ENGINES:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            result = pool.submit(run_engine, engine, [str(p) for p in paths], threads).result()
        result["rtf"] = result["decode_s"] / audio_s
        if references is not None:
            result["cer"], result["wer"] = error_rates(references, result["texts"])
        out[engine] = result
    out["speed_ratio"] = out["openai-whisper"]["decode_s"] / out["faster-whisper"]["decode_s"]
    out["cpu_ratio"] = out["openai-whisper"]["decode_cpu_s"] / out["faster-whisper"]["decode_cpu_s"]
    out["cer_between_engines"] = error_rates(out["faster-whisper"]["texts"], out["openai-whisper"]["texts"])[0]
    return out


def clip_rows(n: int) -> list[dict[str, str]]:
    """Every row of ko_transcribed's labels, ordered so that the first ``n`` are spread over the file."""
    with (KO_TRANSCRIBED / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    step = max(1, len(rows) // n)
    picked = rows[::step][:n]
    return picked + [r for r in rows if r not in picked]


def make_diary(rows: list[dict[str, str]], seconds: float, dest: Path) -> tuple[Path, str, int]:
    """(WAV path, reference, clips used): clips joined with pauses until ``seconds`` is reached."""
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)
    parts, texts = [], []
    for row in rows:
        if sum(p.size for p in parts) >= seconds * SAMPLE_RATE:
            break
        parts += [load_audio(KO_TRANSCRIBED / row["path"]).samples, pause]
        texts.append(row["transcript"])
    sf.write(dest, np.concatenate(parts[:-1]), SAMPLE_RATE)
    return dest, " ".join(texts), len(texts)


def report(title: str, result: dict) -> None:
    print(f"\n{title}: {result['n']} input(s), {result['audio_s']:.1f} s audio")
    print(f"{'engine':<16}{'compute':>9}{'load s':>8}{'decode s':>10}{'cpu s':>8}{'RTF':>7}{'CER':>8}{'WER':>8}"
          f"{'peak RSS MB':>13}")
    for engine in ENGINES:
        r = result[engine]
        print(f"{engine:<16}{r['compute_type']:>9}{r['load_s']:>8.1f}{r['decode_s']:>10.1f}{r['decode_cpu_s']:>8.1f}"
              f"{r['rtf']:>7.3f}"
              f"{r.get('cer', float('nan')):>8.4f}{r.get('wer', float('nan')):>8.4f}{r['peak_rss_mb']:>13.0f}")
    print(f"openai-whisper / faster-whisper decode time: {result['speed_ratio']:.2f}x wall, "
          f"{result['cpu_ratio']:.2f}x CPU; "
          f"CER of openai-whisper's text against faster-whisper's: {result['cer_between_engines']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10, help="clips of ko_transcribed (0: none)")
    parser.add_argument("--diary-s", type=float, default=60.0, help="length of the joined diary (0: none)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for each engine")
    args = parser.parse_args()
    rows = clip_rows(max(args.n, 1))
    clips = rows[: args.n]
    figures = {}
    first = bench_config(ENGINES[0], args.threads)
    print(f"CPU, {args.threads} thread(s) per engine; faster-whisper {first.compute_type} (config), openai-whisper "
          f"float32; both the embedded base weights. Decoding: language {first.language}, beam {first.beam_size}, "
          f"temperatures {list(first.temperature)}, condition_on_previous_text false, no initial prompt, "
          f"word timestamps {str(first.word_timestamps).lower()}, no VAD.", flush=True)
    if clips:
        figures["clips"] = compare([KO_TRANSCRIBED / r["path"] for r in clips], [r["transcript"] for r in clips],
                                   args.threads)
        report("clips", figures["clips"])
    if args.diary_s > 0:
        with tempfile.TemporaryDirectory() as tmp:
            path, reference, used = make_diary(rows[args.n :] or rows, args.diary_s, Path(tmp) / "diary.wav")
            figures["diary"] = compare([path], [reference], args.threads) | {"clips_joined": used}
        report(f"diary ({used} clips joined)", figures["diary"])
    for result in figures.values():
        for engine in ENGINES:
            result[engine].pop("texts")
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
