"""Train the embedded text emotion model (``fusion/models/text/``) on ``shared/data/text``.

Fits each candidate recipe on the train split, keeps the best by dev macro-F1, writes
``weights.npz`` + ``config.json`` and reports dev and test figures. Test is never used to
train or choose.

    python -m fusion.train_text [--data DIR] [--out DIR] [--seed N]
    python -m fusion.train_text --eval-only [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

import fusion
from fusion.config import default_config
from fusion.text_branch import (
    CONFIG_FILE,
    EMBEDDED_DIR,
    WEIGHTS_FILE,
    EmbeddedTextModel,
    FeatureBlock,
    TextEmotionModel,
    featurize,
    hashing_vectorizer,
    morphemes,
    softmax,
)

DATA_DIR = Path(fusion.__file__).resolve().parents[1].parent / "shared" / "data" / "text"
DIALOGUE = "ko_emotion_dialogue.csv"
ELDERLY = "ko_emotion_elderly_extra.csv"

CHAR = {"input": "text", "hashing": {"analyzer": "char_wb", "ngram_range": [1, 4], "n_features": 2**20}}
MORPH = {
    "input": "morphemes",
    "hashing": {"analyzer": "word", "token_pattern": r"\S+", "lowercase": False, "ngram_range": [1, 2], "n_features": 2**20},
}
# name -> (feature blocks, inverse regularisation C); chosen among by dev macro-F1.
CANDIDATES = {
    "char1-4/C10": ([CHAR], 10.0),
    "morph1-2/C10": ([MORPH], 10.0),
    "char1-4+morph1-2/C10": ([CHAR, MORPH], 10.0),
}


def read_split(data: Path, name: str, split: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of one split of one CSV, using the labelled ``text`` column."""
    with (data / name).open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == split and r["text"].strip()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def evaluate(model: TextEmotionModel, texts: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and per-label precision/recall/F1/support of ``model`` on gold ``labels``."""
    pred = [model.labels[i] for i in model.predict_proba(texts).argmax(axis=1)]
    p, r, f, n = precision_recall_fscore_support(labels, pred, labels=list(model.labels), zero_division=0)
    return {
        "n": len(labels),
        "accuracy": round(float(accuracy_score(labels, pred)), 4),
        "macro_f1": round(float(f1_score(labels, pred, labels=list(model.labels), average="macro")), 4),
        "per_label": {
            label: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                    "f1": round(float(f[i]), 4), "support": int(n[i])}
            for i, label in enumerate(model.labels)
        },
    }


def fit(specs: list[dict], texts: list[str], labels: list[str], morphs: list[str] | None, c: float, seed: int):
    """Fit idf per block on the training texts, then the logistic regression; returns (blocks, lr)."""
    blocks = []
    for spec in specs:
        counts = hashing_vectorizer(spec).transform(morphs if spec["input"] == "morphemes" else texts).tocsr()
        columns = np.unique(counts.indices).astype(np.int32)
        df = np.bincount(np.searchsorted(columns, counts.indices), minlength=len(columns))
        idf = np.log((1 + len(texts)) / (1 + df)) + 1.0
        blocks.append(FeatureBlock(spec, columns, idf))
    lr = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    lr.fit(featurize(blocks, texts, morphs), labels)
    return blocks, lr


def fit_temperature(logits: np.ndarray, classes: np.ndarray, gold: Sequence[str]) -> tuple[float, tuple[float, float]]:
    """The softmax temperature minimising dev log-loss (argmax, hence F1, is unchanged).

    Returns the temperature and the dev log-loss at temperature 1 and at the chosen one.
    """
    target = np.searchsorted(classes, gold)
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 141))
    losses = [float(-np.log(softmax(logits / t)[np.arange(len(target)), target] + 1e-12).mean()) for t in grid]
    best = int(np.argmin(losses))
    return round(float(grid[best]), 4), (round(losses[int(np.argmin(np.abs(grid - 1.0)))], 4), round(losses[best], 4))


def save(out: Path, blocks: list[FeatureBlock], lr: LogisticRegression, meta: dict) -> None:
    """Write ``weights.npz`` (columns, idf, coef float16, intercept) and ``config.json``."""
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"coef": lr.coef_.astype(np.float16), "intercept": lr.intercept_.astype(np.float32)}
    for i, block in enumerate(blocks):
        arrays[f"columns_{i}"] = block.columns
        arrays[f"idf_{i}"] = block.idf.astype(np.float32)
    np.savez_compressed(out / WEIGHTS_FILE, **arrays)
    meta = {**meta, "labels": [str(c) for c in lr.classes_], "features": [b.spec for b in blocks]}
    (out / CONFIG_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def train(data: Path, out: Path, seed: int) -> dict:
    """Select a recipe on dev, save it to ``out`` and return its dev/test metrics."""
    labels = default_config().labels.ko
    texts, y = read_split(data, DIALOGUE, "train")
    extra_texts, extra_y = read_split(data, ELDERLY, "train")
    texts, y = texts + extra_texts, y + extra_y
    dev = read_split(data, DIALOGUE, "dev")
    morphs = {"train": morphemes(texts), "dev": morphemes(dev[0])}
    scores, best = {}, None
    for name, (specs, c) in CANDIDATES.items():
        start = time.perf_counter()
        blocks, lr = fit(specs, texts, y, morphs["train"], c, seed)
        pred = lr.predict(featurize(blocks, dev[0], morphs["dev"]))
        scores[name] = round(float(f1_score(dev[1], pred, average="macro")), 4)
        print(f"candidate {name}: dev macro-F1 {scores[name]:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        if best is None or scores[name] > scores[best[0]]:
            best = (name, blocks, lr)
    name, blocks, lr = best
    temperature, nll = fit_temperature(lr.decision_function(featurize(blocks, dev[0], morphs["dev"])), lr.classes_, dev[1])
    print(f"temperature {temperature:.3f} (dev log-loss {nll[0]:.4f} -> {nll[1]:.4f})", flush=True)
    command = "python -m fusion.train_text " + " ".join(sys.argv[1:])
    save(out, blocks, lr, {
        "model_id": f"embedded:ngram-lr:{name}",
        "temperature": temperature,
        "recipe": {"candidate": name, "C": CANDIDATES[name][1], "seed": seed, "dev_macro_f1_by_candidate": scores},
        "training_data": {
            "sources": [f"{DIALOGUE} split=train column=text", f"{ELDERLY} split=train column=text"],
            "rows": len(texts),
            "selection": f"{DIALOGUE} split=dev",
        },
        "command": command.strip(),
    })
    model = EmbeddedTextModel(out, labels)
    metrics = {split: evaluate(model, *read_split(data, DIALOGUE, split)) for split in ("dev", "test")}
    meta = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    meta["metrics"] = metrics
    (out / CONFIG_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fusion.train_text", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="folder holding the text CSVs")
    parser.add_argument("--out", type=Path, default=EMBEDDED_DIR, help="model directory to write or evaluate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-only", action="store_true", help="only report test figures of the model in --out")
    args = parser.parse_args(argv)
    if args.eval_only:
        model = EmbeddedTextModel(args.out, default_config().labels.ko)
        metrics = {"test": evaluate(model, *read_split(args.data, DIALOGUE, "test"))}
    else:
        metrics = train(args.data, args.out, args.seed)
    for split, m in metrics.items():
        print(f"{split}: macro-F1 {m['macro_f1']:.4f}  accuracy {m['accuracy']:.4f}  (n={m['n']}, {DIALOGUE})")
    print("command: python -m fusion.train_text " + " ".join(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    main()
