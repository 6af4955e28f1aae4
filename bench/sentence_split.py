"""Sentence splitting of unpunctuated diaries: kiwi alone against kiwi-endings, side by side in one run.

    python bench/sentence_split.py [--rounds 5] [--data evalsets/diaries/dev.jsonl]

Each round splits every diary's unpunctuated text with both methods, in turn (the machine's drift hits both);
prints the median milliseconds a diary of each, their ratio, and the share of diaries split into exactly their
sentences.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from fusion.config import default_config
from fusion.eval.diaries import read_diaries
from fusion.sentences import kiwi, split_text

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=HERE.parent / "evalsets" / "diaries" / "dev.jsonl")
    args = parser.parse_args()
    diaries = read_diaries(args.data)
    texts = [d["unpunctuated"] for d in diaries]
    base = default_config().sentences
    methods = {m: base.model_copy(update={"method": m}) for m in ("kiwi", "kiwi-endings")}
    kiwi()  # built once, outside the timing
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.rounds):
        for method, cfg in methods.items():
            t0 = time.perf_counter()
            for text in texts:
                split_text(text, cfg)
            times[method].append((time.perf_counter() - t0) * 1000 / len(texts))
    for method, cfg in methods.items():
        exact = sum(len(split_text(d["unpunctuated"], cfg)) == len(d["sentences"]) for d in diaries) / len(diaries)
        print(f"{method:13s} {statistics.median(times[method]):6.2f} ms a diary (median of {args.rounds} rounds), "
              f"exact sentence count {exact:.3f} ({len(diaries)} diaries, {args.data.name})")
    ratios = [e / k for e, k in zip(times["kiwi-endings"], times["kiwi"])]
    print(f"kiwi-endings / kiwi time: {statistics.median(ratios):.2f}x (median of the rounds' ratios)")


if __name__ == "__main__":
    main()
