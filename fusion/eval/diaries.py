"""``fusion eval diaries``: the words half on diaries that look like diaries.

Reads a JSON Lines file of diaries (``evalsets/diaries/make_set.py`` writes them): per line an
``id``, a ``polarity`` (positive, negative, mixed, plain), ``sentences`` (each a ``text`` and a
``label``: one of ``[labels] ko`` or ``중립`` for a plain sentence) and ``unpunctuated`` (the diary as an
STT engine without punctuation writes it), optionally a ``source``. Each diary goes through the text
stage as the pipeline runs it (``fusion.text.model.read_words``: sentences read in context, the
polarity calibrated) and the words' verdict of ``fusion.combine.diary_words``. Figures:

- sentences: macro-F1 over the six labels and 중립 (a sentence the model marks neutral counts as 중립);
- diaries: polarity accuracy with its confusion matrix, how many positive diaries read positive and
  how many negative ones read positive;
- splitting: the unpunctuated diary split by ``[sentences]``: the share with exactly the right number
  of sentences, boundary precision/recall/F1 (a boundary is right where the next sentence starts at
  the same character), and the polarity read from that split, as a diary spoken without punctuation
  is read.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from fusion.config import Config, default_config
from fusion.errors import InputError
from fusion.eval.metrics import classification_metrics
from fusion.files import open_regular
from fusion.report import POLARITIES

PLAIN = "중립"
# What a speech-to-text engine without punctuation leaves out of a sentence.
_PUNCTUATION = re.compile(r"[.,?!…~·\"'“”‘’]")


def unpunctuated(sentences: list[str]) -> str:
    """The sentences as an STT engine without punctuation writes them: punctuation dropped, one space between
    words (what ``evalsets/diaries/make_set.py`` stores as a diary's ``unpunctuated``)."""
    return " ".join(" ".join(_PUNCTUATION.sub(" ", s).split()) for s in sentences)


def read_diaries(path: str | Path, source: str | None = None) -> list[dict]:
    """The diaries of a JSON Lines file, checked; ``source`` keeps only those of that ``source``."""
    path = Path(path)
    try:
        with open_regular(path) as fh:
            lines = fh.read().decode("utf-8").splitlines()
        diaries = [json.loads(line) for line in lines if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(path, f"cannot read the diaries ({exc})") from exc
    for k, d in enumerate(diaries, 1):
        if not isinstance(d, dict) or d.get("polarity") not in POLARITIES or not d.get("sentences") \
                or not isinstance(d.get("unpunctuated"), str) \
                or not all(isinstance(s, dict) and s.get("text") and s.get("label") for s in d["sentences"]):
            raise InputError(path, f"line {k}: not a diary (polarity in {POLARITIES}, sentences with text and "
                                   "label, unpunctuated)")
    diaries = [d for d in diaries if source is None or d.get("source") == source]
    if not diaries:
        raise InputError(path, "no diaries to evaluate" + (f" of source {source!r}" if source else ""))
    return diaries


def boundaries(sentences: list[str], text: str) -> set[int]:
    """Where each sentence after the first starts in ``text`` (the sentences in order, as substrings)."""
    out, pos = set(), 0
    for k, s in enumerate(sentences):
        at = text.find(s, pos)
        if at < 0:
            raise ValueError(f"sentence {s!r} is not in the text after character {pos}")
        if k:
            out.add(at)
        pos = at + len(s)
    return out


def _prf(hits: int, predicted: int, true: int) -> dict:
    p = hits / predicted if predicted else 1.0
    r = hits / true if true else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def _polarity_figures(truth: list[str], pred: list[str]) -> dict:
    positive = [p for t, p in zip(truth, pred) if t == "positive"]
    negative = [p for t, p in zip(truth, pred) if t == "negative"]
    return {**classification_metrics(truth, pred, POLARITIES),
            "positive_read_positive": sum(p == "positive" for p in positive) / len(positive) if positive else None,
            "negative_read_positive": sum(p == "positive" for p in negative), "negative": len(negative)}


def eval_diaries(path: str | Path, config: Config | None = None, source: str | None = None) -> dict:
    """Sentence macro-F1, diary polarity, and the split of the unpunctuated variant (see the module doc)."""
    from fusion.combine import diary_words
    from fusion.sentences import split_text
    from fusion.text.model import load_text_model, read_words

    cfg = config or default_config()
    diaries = read_diaries(path, source)
    model = load_text_model(cfg.text, cfg.labels.ko)
    words = read_words(model, [[s["text"] for s in d["sentences"]] for d in diaries], cfg.text)
    y_true = [s["label"] for d in diaries for s in d["sentences"]]
    y_pred = [PLAIN if marked else cfg.labels.ko[int(p.argmax())]
              for w in words for p, marked in zip(w.probs, w.marked)]
    truth = [d["polarity"] for d in diaries]
    polarity = [diary_words(w, cfg).polarity for w in words]

    split = [split_text(d["unpunctuated"], cfg.sentences) for d in diaries]
    hits = predicted = true = 0
    for d, got in zip(diaries, split):
        ref = boundaries([unpunctuated([s["text"]]) for s in d["sentences"]], d["unpunctuated"])
        pred = boundaries(got, d["unpunctuated"])
        hits, predicted, true = hits + len(ref & pred), predicted + len(pred), true + len(ref)
    exact = [len(got) == len(d["sentences"]) for d, got in zip(diaries, split)]
    spoken = [diary_words(w, cfg).polarity for w in read_words(model, split, cfg.text)]
    return {"task": "diaries", "data": str(path), "source": source, "model": model.model_id, "n": len(diaries),
            "sources": dict(Counter(d.get("source", "") for d in diaries)),
            "sentences": {"n": len(y_true), **classification_metrics(y_true, y_pred, (*cfg.labels.ko, PLAIN))},
            "polarity": _polarity_figures(truth, polarity),
            "split": {"method": cfg.sentences.method, "exact_count": sum(exact) / len(exact),
                      "boundaries": _prf(hits, predicted, true)},
            "polarity_unpunctuated": _polarity_figures(truth, spoken),
            "items": [{"id": d["id"], "polarity": t, "read": p, "read_unpunctuated": s,
                       "sentences": len(d["sentences"]), "split": len(g)}
                      for d, t, p, s, g in zip(diaries, truth, polarity, spoken, split)]}


def _confusion(figures: dict) -> list[str]:
    labels = figures["confusion"]["labels"]
    lines = ["  true \\ read " + "".join(lab.rjust(10) for lab in labels)]
    for lab, row in zip(labels, figures["confusion"]["matrix"]):
        lines.append("  " + lab.ljust(11) + "".join(str(v).rjust(10) for v in row))
    return lines


def summary(result: dict) -> str:
    """A plain-text summary of an ``eval_diaries`` result for the terminal."""
    s, p, u, sp = result["sentences"], result["polarity"], result["polarity_unpunctuated"], result["split"]
    b = sp["boundaries"]
    head = f"diaries · {result['data']}" + (f" (source {result['source']})" if result.get("source") else "")
    pos = "n/a" if p["positive_read_positive"] is None else f"{p['positive_read_positive']:.3f}"
    lines = [head, f"model     {result['model']}", f"diaries   {result['n']}  {result['sources']}",
             f"sentences {s['n']}  macro_f1 {s['macro_f1']:.4f}  accuracy {s['accuracy']:.4f}  "
             "(six labels and 중립)",
             f"polarity  accuracy {p['accuracy']:.4f}  positive read positive {pos}  "
             f"negative read positive {p['negative_read_positive']}/{p['negative']}", *_confusion(p),
             f"split     {sp['method']}: exact sentence count {sp['exact_count']:.4f}  boundary P {b['precision']:.3f} "
             f"R {b['recall']:.3f} F1 {b['f1']:.3f}  (unpunctuated variant)",
             f"polarity, unpunctuated and split: accuracy {u['accuracy']:.4f}  negative read positive "
             f"{u['negative_read_positive']}/{u['negative']}", *_confusion(u)]
    return "\n".join(lines)
