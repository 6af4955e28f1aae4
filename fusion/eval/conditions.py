"""``fusion eval audio|alerts --degrade``: the same evaluation under each recording condition of ``fusion.degrade``.

``under_conditions`` writes, per condition, every row's recording degraded with its own seed
(``fusion.degrade.clip_seed``: the run's seed and the row's path) into a temporary folder, with
a copy of the CSV pointing there, and runs the evaluation on that copy. ``clean`` runs on the CSV
itself. Babble comes from the ``[eval] babble_split`` clips of ``[eval] babble`` (other talkers
than the evaluated ones). The result holds one full evaluation per condition.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from fusion.audio import SAMPLE_RATE, load_audio
from fusion.config import Config
from fusion.degrade import clip_seed, degrade, needs_babble
from fusion.errors import FusionError
from fusion.eval.text import read_rows, resolve_path
from fusion.progress import track


def babble_clips(cfg: Config) -> list[np.ndarray]:
    """The clips babble is made of: ``[eval] babble`` rows of split ``[eval] babble_split``."""
    listing = Path(cfg.eval.babble)
    rows = read_rows(listing, ("path",), cfg.eval.babble_split)
    return [load_audio(resolve_path(listing, r["path"])).samples for r in rows]


def babble_for(conditions: list[str] | tuple[str, ...], cfg: Config) -> list[np.ndarray] | None:
    """``babble_clips`` where one of ``conditions`` mixes babble in, else None (nothing loaded)."""
    return babble_clips(cfg) if needs_babble(conditions) else None


def degraded_csv(csv_path: str | Path, rows: list[dict], condition: str, seed: int, babble: list[np.ndarray] | None,
                 folder: Path, progress: bool = True) -> Path:
    """A copy of the CSV's ``rows`` whose recordings (and baseline JSONs' paths) are absolute, the recordings
    degraded under ``condition`` into ``folder``; a recording that cannot be read stays as it is, for the
    evaluation to report as the error row it is."""
    out_rows = []
    for i, row in enumerate(track(rows, f"degrade {condition}", progress)):
        try:
            samples = load_audio(resolve_path(csv_path, row["path"])).samples
        except FusionError:
            out_rows.append({**row, "path": str(resolve_path(csv_path, row["path"]))})
            continue
        dest = folder / f"{i:05d}.wav"
        sf.write(dest, degrade(samples, condition, clip_seed(seed, row["path"].strip()), babble), SAMPLE_RATE,
                 subtype="FLOAT")
        baseline = (row.get("baseline") or "").strip()
        if baseline.lower().endswith(".json"):
            row = {**row, "baseline": str(resolve_path(csv_path, baseline))}
        out_rows.append({**row, "path": str(dest)})
    dest_csv = folder / "rows.csv"
    with dest_csv.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(out_rows)
    return dest_csv


def under_conditions(evaluate: Callable[[Path], dict], csv_path: str | Path, conditions: list[str],
                     split: str | None, seed: int, cfg: Config, progress: bool = True) -> dict:
    """``evaluate(csv)`` on the CSV's (split) rows under each condition: {"conditions": {name: result}}."""
    rows = read_rows(csv_path, ("path",), split)
    babble = babble_for(conditions, cfg)
    results = {}
    for condition in conditions:
        with tempfile.TemporaryDirectory(prefix="fusion-degrade-") as tmp:
            data = Path(csv_path) if condition == "clean" else \
                degraded_csv(csv_path, rows, condition, seed, babble, Path(tmp), progress)
            results[condition] = {**evaluate(data), "data": str(csv_path), "condition": condition}
    first = results[conditions[0]]
    return {"task": f"{first['task']} under conditions", "data": str(csv_path), "split": split, "seed": seed,
            "conditions": results}


def _head(task: str, result: dict) -> str:
    split = f"split {result['split']}, " if result.get("split") else ""
    return f"{task} under conditions · {result['data']} ({split}seed {result['seed']})"


def _num(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def _confused(result: dict, truth: str, predicted: str) -> int:
    labels = result["confusion"]["labels"]
    return result["confusion"]["matrix"][labels.index(truth)][labels.index(predicted)]


def audio_summary(result: dict) -> str:
    """One line per condition: UAR, SAD-vs-rest AUCs, and how often angry and sad are taken for each other."""
    lines = [_head("audio", result),
             f"{'condition':16s}    n    uar  sad_auc  depr_auc  angry→sad  sad→angry"]
    for name, r in result["conditions"].items():
        confused = f"{_confused(r, 'ANGRY', 'SAD'):9d}  {_confused(r, 'SAD', 'ANGRY'):9d}"
        lines.append(f"{name:16s} {r['n']:4d}  {_num(r['uar'])}    {_num(r['sad_auc'])}     "
                     f"{_num(r['depressed_auc'])}  {confused}")
    return "\n".join(lines)


def alerts_summary(result: dict, flagship: str) -> str:
    """One line per condition: the flagship's hits, and per group how many rows raised it and any alert."""
    lines = [_head("alerts", result),
             f"{flagship}: hits/expected; per group rows raising it (any alert in brackets); rows whose alerts the "
             "recording's quality withheld"]
    for name, r in result["conditions"].items():
        m = r["kinds"][flagship]
        groups = "  ".join(f"{g or '-'} {c['fired'][flagship]}({_any(r, g)})/{c['n'] - c['errors']}"
                           for g, c in r["groups"].items())
        withheld = sum(bool(it.get("withheld")) for it in r["items"])
        lines.append(f"{name:16s} hits {m['hits']}/{m['expected']}  {groups}  withheld {withheld}")
    return "\n".join(lines)


def _any(result: dict, group: str) -> int:
    return sum(bool(it["got"]) for it in result["items"] if it["group"] == group and it["error"] is None)
