"""Does centring the whisper-encoder-lr features on the speaker help, on DEV speakers only?

    python bench/speaker_centring.py [--data ../shared/data] [--cache DIR]

The shipped recipe (layers 2+3 mean-pooled, C 0.01, Korean weight 10) under the trainer's dev
protocol (fusion.train.voice.dev_figures: fit on train, score RAVDESS dev actors 05/06 and EmoDB dev
speakers 11/14; Korean: leave one plain-to-emotional training speaker out, ema / emh), with the
pooled features as they are and centred on the speaker:

    x' = x - mean(the speaker's other clips) + mean(training clips)

applied to every clip, training and scored alike, as the service could from a person's other diaries
(the speaker mean leaves the clip itself out and takes every clip of the speaker, whatever its label,
the scripted speakers' emotional clips included, though those are never trained on). Prints each dev
speaker's figures; nothing on test, and nothing shipped changes.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from fusion.audio import load_audio
from fusion.config import default_config
from fusion.eval.metrics import roc_auc, uar
from fusion.levels import voiced_spans
from fusion.model_files import EMBEDDED_SHA256
from fusion.progress import track
from fusion.train.audio_clips import read_rows as read_dataset
from fusion.train.voice import DATASETS, LABEL_MAP, Candidate, Corpus, fit, model_labels, read_rows
from fusion.voice.whisper import TRAINED_WINDOW, load_encoder, pooled_features

LAYERS = (2, 3)
SHIPPED = Candidate((0, 1), C=0.01, korean_weight=10.0)  # indices into the two cached layers


def pool_rows(data: Path) -> list[dict]:
    """Clips never trained on that still belong to a training/dev speaker's pool: scripted emotional clips."""
    out = []
    for r in (r for ds in DATASETS for r in read_dataset(data, ds)):
        if r.get("subset") == "emotional-to-emotional" and LABEL_MAP.get(r["label"]) not in (None, "NEUTRAL"):
            out.append(r)
    return out


def features(rows: list[dict], cache: Path, cfg, progress: bool = True) -> np.ndarray:
    """Mean-pooled layers 2 and 3 of each whole clip, as the product pools a diary; cached as .npy."""
    key = hashlib.sha1("\n".join([EMBEDDED_SHA256, str(TRAINED_WINDOW["max_piece_s"]), *map(str, LAYERS),
                                  *(r["path"] for r in rows)]).encode()).hexdigest()[:16]
    path = cache / f"whisper_layers23_{key}.npy"
    if path.is_file():
        return np.load(path)
    encoder = load_encoder(max(LAYERS))
    out = np.zeros((len(rows), len(LAYERS), encoder.conv1.out_channels), np.float32)
    for i in track(range(len(rows)), "encoder features", progress):
        audio = load_audio(rows[i]["path"])
        speech = voiced_spans(audio, cfg.audio_input) or [(0.0, audio.duration)]
        out[i] = pooled_features(audio.samples, [(0.0, audio.duration)], speech, encoder, LAYERS,
                                 TRAINED_WINDOW["max_piece_s"])[0].reshape(len(LAYERS), -1)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def centred(x: np.ndarray, speakers: list[str], n_scored: int, train: np.ndarray) -> np.ndarray:
    """Rows ``:n_scored`` of ``x`` minus their speaker's mean over the other rows (pool rows included) plus the
    training mean."""
    by = defaultdict(list)
    for i, s in enumerate(speakers):
        by[s].append(i)
    flat = x.reshape(len(x), -1).astype(np.float64)
    target = flat[:n_scored][train].mean(axis=0)
    out = flat[:n_scored].copy()
    for members in by.values():
        idx = np.array(members)
        total = flat[idx].sum(axis=0)
        for i in idx[idx < n_scored]:
            out[i] = flat[i] - (total - flat[i]) / (len(idx) - 1) + target
    return out.reshape(n_scored, *x.shape[1:]).astype(np.float32)


def speaker_figures(corpus: Corpus, head, cand: Candidate, rows: np.ndarray, sad: int) -> dict:
    p = head.probs(corpus.x(cand.layers)[rows].astype(np.float64))
    y = corpus.labels[rows]
    emotional = y < p.shape[1] - 1
    return {"uar": uar(y[emotional], p[emotional, :-1].argmax(1)), "sad_auc": roc_auc(list(y == sad), list(p[:, sad]))}


def dev_table(corpus: Corpus, cand: Candidate, sad: int) -> dict:
    train = corpus.mask(split="train")
    head = fit(corpus, train, cand)
    out = {}
    for ds in ("ravdess", "emodb"):
        dev = corpus.mask(dataset=ds, split="dev")
        out[f"{ds} dev"] = speaker_figures(corpus, head, cand, dev, sad)
        for speaker in sorted({corpus.rows[i]["speaker"] for i in np.flatnonzero(dev)}):
            out[speaker] = speaker_figures(corpus, head, cand, corpus.mask(speaker=speaker), sad)
    for speaker in ("ko_emotional:ema", "ko_emotional:emh"):
        rows = corpus.mask(speaker=speaker)
        out[speaker + " (LOSO)"] = speaker_figures(corpus, fit(corpus, train & ~rows, cand), cand, rows, sad)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    from fusion.files import cache_dir

    cfg = default_config()
    speech = (args.data / "speech").resolve()
    cache = args.cache or cache_dir() / "train_audio"
    rows, extra = read_rows(speech), pool_rows(speech)
    x = features(rows + extra, cache, cfg)
    labels = model_labels(cfg)
    y = np.array([labels.index(r["model_label"]) for r in rows])
    sad = labels.index("SAD")
    raw = Corpus(rows, y, x[:len(rows)])
    train = raw.mask(split="train")
    cent = Corpus(rows, y, centred(x, [r["speaker"] for r in rows + extra], len(rows), train))
    tables = {"as shipped": dev_table(raw, SHIPPED, sad), "speaker-centred": dev_table(cent, SHIPPED, sad)}
    print("| dev speaker(s) | as shipped: UAR | SAD AUC | speaker-centred: UAR | SAD AUC |")
    print("|---|---|---|---|---|")
    for name in tables["as shipped"]:
        a, b = tables["as shipped"][name], tables["speaker-centred"][name]
        cells = [f"{v:.3f}" if v is not None else "n/a" for v in (a["uar"], a["sad_auc"], b["uar"], b["sad_auc"])]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for kind, t in tables.items():
        six = [t["ravdess dev"]["uar"], t["emodb dev"]["uar"]] + [
            t[f"ko_emotional:{s} (LOSO)"][m] for s in ("ema", "emh") for m in ("uar", "sad_auc")]
        print(f"{kind}: dev score (mean of the trainer's six figures) {np.mean(six):.3f}")


if __name__ == "__main__":
    main()
