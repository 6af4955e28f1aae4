"""``fusion eval text`` and ``fusion eval stt``: measure the text and speech-to-text models on a labelled CSV.

``eval_text`` (columns text,label) and ``eval_stt`` (path,transcript) each return a JSON-ready
dict; ``summary`` formats one (and ``fusion.eval.voice``'s) for the terminal. The voice model's
evaluation is in ``fusion.eval.voice``, the alerts' in ``fusion.eval.alerts``. Paths are
relative to the CSV's folder (or absolute); labels match case-insensitively, through the
dataset-word maps of ``[eval]``; a row whose label the model lacks (neutral, calm, bored) is
skipped and counted. ``split`` keeps only the rows of that ``split`` column value (the shared
``labels.csv`` files have one).
"""

from __future__ import annotations

import csv
import io
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from fusion.config import Config, default_config
from fusion.errors import InputError, MissingExtra
from fusion.eval.metrics import classification_metrics
from fusion.files import open_regular
from fusion.progress import track

TEXT_BATCH = 256


# ---------------------------------------------------------------- reading the CSV

def read_rows(csv_path: str | Path, required: Sequence[str], split: str | None = None) -> list[dict[str, str]]:
    """The CSV's rows as dicts (BOM-tolerant), checked for ``required`` columns, filtered by ``split``."""
    csv_path = Path(csv_path)
    try:
        with open_regular(csv_path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(csv_path, f"cannot read the CSV ({exc})") from exc
    missing = [c for c in (*required, *(["split"] if split else [])) if c not in columns]
    if missing:
        raise InputError(csv_path, f"missing column(s) {missing}; it has {columns}")
    if split:
        rows = [r for r in rows if r["split"].strip() == split]
    if not rows:
        raise InputError(csv_path, "no rows to evaluate" + (f" in split {split!r}" if split else ""))
    return rows


def resolve_path(csv_path: str | Path, path: str) -> Path:
    """``path`` as written in the CSV: absolute, or relative to the CSV's folder."""
    p = Path(path.strip()).expanduser()
    return p if p.is_absolute() else Path(csv_path).resolve().parent / p


def label_lookup(labels: Sequence[str], aliases: dict[str, str]) -> dict[str, str]:
    """Lower-case spelling → model label: the labels themselves plus the aliases that name one of them."""
    lookup = {k.lower(): v for k, v in aliases.items() if v in labels}
    lookup.update({lab.lower(): lab for lab in labels})
    return lookup


def split_known(raw: Iterable[str], lookup: dict[str, str]) -> tuple[list[int], list[str], dict[str, int]]:
    """(indices of scorable rows, their model labels, counts of skipped raw labels)."""
    keep, labels, skipped = [], [], Counter()
    for i, label in enumerate(raw):
        mapped = lookup.get(label.strip().lower())
        if mapped is None:
            skipped[label.strip()] += 1
        else:
            keep.append(i)
            labels.append(mapped)
    return keep, labels, dict(skipped)


def classification_result(kind: str, csv_path, split, model_id: str, y_true, y_pred, labels, skipped: dict) -> dict:
    """The result of ``fusion eval text|audio``: what was run on which rows, and its classification metrics."""
    return {"task": kind, "data": str(csv_path), "split": split, "model": model_id, "n": len(y_true),
            "skipped": sum(skipped.values()), "skipped_labels": skipped,
            **classification_metrics(y_true, y_pred, labels)}


# ---------------------------------------------------------------- text

def eval_text(csv_path: str | Path, model: str | None = None, split: str | None = None,
              config: Config | None = None, progress: bool = True, stt: bool = False) -> dict:
    """The text model (``model``: a directory; default the configured one) on a text,label CSV.

    ``stt``: the texts as speech-to-text writes them (``stt_style``: no punctuation, spaces perturbed).
    """
    from fusion.text.model import is_embedded, load_text_model

    cfg = config or default_config()
    text_cfg = cfg.text
    if model:
        backend = "embedded" if is_embedded(Path(model).expanduser()) else "hf"
        text_cfg = text_cfg.model_copy(update={"model": model, "backend": backend})
    rows = read_rows(csv_path, ("text", "label"), split)
    labels = cfg.labels.ko
    lookup = label_lookup(labels, {**dict(zip(cfg.labels.ko_english, labels)), **cfg.eval.text_labels})
    keep, y_true, skipped = split_known((r["label"] for r in rows), lookup)
    texts = [rows[i]["text"] for i in keep]
    texts = stt_style(texts) if stt else texts
    clf = load_text_model(text_cfg, labels)
    batches = [texts[a:a + TEXT_BATCH] for a in range(0, len(texts), TEXT_BATCH)]
    probs = [clf.predict_proba(b) for b in track(batches, "text", progress)]
    pred = np.concatenate(probs).argmax(axis=1) if probs else np.zeros(0, int)
    return classification_result("text", csv_path, split, clf.model_id, y_true, [labels[k] for k in pred], labels,
                                 skipped)


# ---------------------------------------------------------------- speech to text

_PUNCT = re.compile(r"[^\w\s]|_")


def stt_style(texts: Sequence[str], seed: int = 0) -> list[str]:
    """Texts as speech-to-text writes them: punctuation gone, a third of the spaces dropped, a few added.

    Seeded, so a figure on this variant is reproducible.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for text in texts:
        chars = []
        for c in " ".join(_PUNCT.sub("", text).split()):
            if c == " " and rng.random() < 1 / 3:
                continue
            chars.append(c)
            if c != " " and rng.random() < 0.03:
                chars.append(" ")
        out.append(" ".join("".join(chars).split()))
    return out


def normalise_text(text: str) -> str:
    """NFC, punctuation → space, whitespace collapsed, lower-case (for WER)."""
    text = unicodedata.normalize("NFC", text)
    return " ".join(_PUNCT.sub(" ", text).lower().split())


def error_rates(refs: Sequence[str], hyps: Sequence[str]) -> tuple[float, float]:
    """Corpus (CER, WER) with jiwer after ``normalise_text``; CER ignores spaces (Korean spacing varies)."""
    try:
        import jiwer
    except ImportError as exc:
        raise MissingExtra("jiwer", "eval", "the speech-to-text evaluation") from exc

    refs = [normalise_text(r) for r in refs]
    hyps = [normalise_text(h) for h in hyps]
    cer = jiwer.cer([r.replace(" ", "") for r in refs], [h.replace(" ", "") for h in hyps])
    wer = jiwer.wer(refs, hyps)
    return float(cer), float(wer)


def eval_stt(csv_path: str | Path, engine: str | None = None, model: str | None = None, split: str | None = None,
             config: Config | None = None, progress: bool = True, **stt_settings) -> dict:
    """Speech to text on a path,transcript CSV: CER, WER, real-time factor, and each clip's text.

    ``engine``/``model`` and any ``[stt]`` field given in ``stt_settings`` (``beam_size=1`` …)
    override the configuration. The real-time factor is decoding time over audio time.
    """
    from fusion.audio import load_audio
    from fusion.levels import voiced_spans
    from fusion.stt import load_engine, transcribe_long

    cfg = config or default_config()
    update = {**({"engine": engine} if engine else {}), **({"model": model} if model else {}), **stt_settings}
    stt_cfg = cfg.with_updates(stt=update).stt if update else cfg.stt
    rows = read_rows(csv_path, ("path", "transcript"), split)
    rows = [r for r in rows if normalise_text(r["transcript"])]
    stt = load_engine(stt_cfg)
    items, audio_s, decode_s = [], 0.0, 0.0
    for row in track(rows, "stt", progress):
        audio = load_audio(resolve_path(csv_path, row["path"]))
        start = time.perf_counter()
        speech = voiced_spans(audio, cfg.audio_input)
        hyp = transcribe_long(stt, audio.samples, speech, stt_cfg.max_chunk_s).text
        decode_s += time.perf_counter() - start
        audio_s += audio.duration
        items.append({"path": row["path"], "reference": row["transcript"], "hypothesis": hyp,
                      "cer": error_rates([row["transcript"]], [hyp])[0]})
    cer, wer = error_rates([i["reference"] for i in items], [i["hypothesis"] for i in items])
    settings = {k: getattr(stt_cfg, k) for k in ("engine", "model", "language", "beam_size", "vad_filter",
                                                 "temperature", "condition_on_previous_text", "initial_prompt",
                                                 "batch_size", "clips", "clip_pad_s")}
    return {"task": "stt", "data": str(csv_path), "split": split, "settings": settings, "n": len(items),
            "cer": cer, "wer": wer, "audio_s": audio_s, "decode_s": decode_s, "rtf": decode_s / max(audio_s, 1e-9),
            "items": items}


# ---------------------------------------------------------------- printing

def _cell(text: str, width: int, right: bool = False) -> str:
    """``text`` padded to ``width`` terminal columns (Hangul and other wide characters count two)."""
    pad = " " * max(width - sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text), 0)
    return pad + text if right else text + pad


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _baseline_line(result: dict) -> str:
    """Which baselines an ``eval audio`` result heard its clips against (``fusion.eval.baselines``)."""
    mode, fallback = result["baseline"], result.get("reference_rows", 0)
    speakers = len(result["personal_speakers"])
    if mode == "personal":
        text = f"{result['baseline_rows']} neutral rows built {speakers} personal baselines"
    elif mode == "auto":
        text = f"personal-auto per clip, from its speaker's other rows ({speakers} speakers)"
    else:
        text = "reference: the row's gender, else by pitch"
    if mode != "reference" and fallback:
        text += f"; {fallback} rows on the reference"
    return f"baseline  {mode}  ({text})"


def summary(result: dict) -> str:
    """A plain-text summary of an ``eval_*`` result for the terminal."""
    head = f"{result['task']} · {result['data']}" + (f" (split {result['split']})" if result.get("split") else "")
    if result["task"] == "stt":
        s = result["settings"]
        return "\n".join([head, f"engine {s['engine']} {s['model']} beam {s['beam_size']} vad {s['vad_filter']} "
                          f"batch {s['batch_size']} clips {s['clips']}",
                          f"n         {result['n']}", f"cer       {result['cer']:.4f}",
                          f"wer       {result['wer']:.4f}",
                          f"rtf       {result['rtf']:.3f}  "
                          f"({result['decode_s']:.1f} s for {result['audio_s']:.1f} s audio)"])
    lines = [head, f"model     {result['model']}", f"n         {result['n']}",
             f"skipped   {result['skipped']}  {result['skipped_labels'] or ''}".rstrip(),
             f"accuracy  {result['accuracy']:.4f}", f"macro_f1  {result['macro_f1']:.4f}",
             f"uar       {result['uar']:.4f}"]
    if result["task"] == "audio":
        lines.append(_baseline_line(result))
        auc, n = result["sad_auc"], result["sad_auc_rows"]
        lines.append(f"sad_auc   {_num(auc)}  (P(SAD): {n['sad']} SAD rows vs "
                     f"{n['rest']} other non-baseline rows, skipped labels included)")
        lines.append(f"depressed_auc {_num(result['depressed_auc'])}  "
                     "(the same rows by P(SAD) + the pitch term against the baseline)")
        lines.append(f"neutral_auc {_num(result['neutral_auc'])}  "
                     "(P(neutral voice): neutral/calm rows vs emotional rows)")
        for title, groups in (("", result["lexical"]), ("speaker ", result.get("per_speaker", {}))):
            for name, g in groups.items():
                lines.append(f"  {title + name:20s} n {g['n']:4d}  uar {_num(g['uar'])}  sad_auc {_num(g['sad_auc'])}"
                             f"  depressed_auc {_num(g.get('depressed_auc'))}"
                             f"  neutral_auc {_num(g.get('neutral_auc'))}")
    labels = result["confusion"]["labels"]
    width = max(8, *(len(_cell(lab, 0)) + 1 for lab in labels))
    lines.append("\n" + _cell("label", width) + "precision  recall     f1  support")
    for lab, m in result["per_label"].items():
        lines.append(f"{_cell(lab, width)}{m['precision']:9.3f}{m['recall']:8.3f}{m['f1']:7.3f}{m['support']:9d}")
    lines.append("\nconfusion (rows true, columns predicted)")
    lines.append(" " * width + "".join(_cell(lab, width, right=True) for lab in labels))
    for lab, row in zip(labels, result["confusion"]["matrix"]):
        lines.append(_cell(lab, width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)
