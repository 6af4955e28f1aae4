"""The shipped n-gram text model and an e5 model side by side: load time, warm ms a sentence, RSS growth.

    python bench/text_models.py [E5_DIR] [--sentences 200] [--rounds 3]

E5_DIR is a directory written by ``fusion train text --recipe e5-finetune`` (default: the shipped one,
``fusion/models/text_e5``).

Each round takes the next N sentences of the dialogue test split (lengths as diaries have them);
each model scores them as the pipeline does (labels, then P(neutral)), alternating models round
by round so both see the same machine load. The last line is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import psutil
import torch

from fusion.config import default_config
from fusion.text.model import E5_DIR, load_text_model
from fusion.train.text_data import DIALOGUE, read_split

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("e5", type=Path, nargs="?", default=E5_DIR)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = read_split(DATA, DIALOGUE, "test")[0]
    rounds = [rows[r * args.sentences : (r + 1) * args.sentences] for r in range(args.rounds)]
    texts = rounds[0]
    cfg = default_config()
    process = psutil.Process()
    models, figures = {}, {"threads": torch.get_num_threads(), "sentences": len(texts)}
    for arch, update in (("ngram-lr", {"architecture": "ngram-lr"}), ("e5-finetune", {"model": str(args.e5)})):
        rss, t0 = process.memory_info().rss, time.perf_counter()
        text_cfg = cfg.text.model_copy(update=update)
        models[arch] = load_text_model(text_cfg, cfg.labels.ko)
        figures[f"{arch}_load_s"] = round(time.perf_counter() - t0, 2)
        figures[f"{arch}_rss_growth_mb"] = round((process.memory_info().rss - rss) / 2**20)
        models[arch].predict_proba(texts[:8]), models[arch].predict_neutral(texts[:8])      # warm-up
    times: dict[str, list[float]] = {arch: [] for arch in models}
    for batch in rounds:                # new sentences each round: nothing is reused from the last call
        for arch, model in models.items():
            t0 = time.perf_counter()
            model.predict_proba(batch), model.predict_neutral(batch)
            times[arch].append(time.perf_counter() - t0)
    for arch, t in times.items():
        figures[f"{arch}_ms_per_sentence"] = round(1000 * statistics.median(t) / len(texts), 2)
        print(f"{arch:>12}: load {figures[f'{arch}_load_s']:.1f} s, RSS +{figures[f'{arch}_rss_growth_mb']} MB, "
              f"warm {figures[f'{arch}_ms_per_sentence']:.2f} ms a sentence ({len(texts)} batched)")
    ratio = figures["e5-finetune_ms_per_sentence"] / figures["ngram-lr_ms_per_sentence"]
    print(f"e5-finetune / ngram-lr time: {ratio:.1f}x (same run, same sentences)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
