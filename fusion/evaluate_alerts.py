"""``fusion eval alerts``: how often the words-vs-voice alerts fire where they should, and where they should not.

``eval_alerts`` runs the public ``fusion.analyze`` on each row of a CSV with columns
``path``, ``transcript`` (the words, given instead of speech-to-text), ``expected`` (the
alert kinds expected, separated by ``;`` or spaces, may be empty) and optionally
``baseline`` (``auto``, a configured name such as ``male``, or a personal baseline JSON
relative to the CSV's folder) and ``group`` (a label for the per-group counts). Per alert
kind of ``[alerts.severity]`` it gives recall (rows expecting the kind that got it) and
false-alarm rate (rows not expecting it that got it). A row whose file cannot be analysed
is reported as an error row and left out of both; the evaluation goes on.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np

from fusion.combine import ALERT_RULES
from fusion.config import Config, default_config
from fusion.errors import FusionError, InputError
from fusion.evaluate import read_rows, resolve_path
from fusion.progress import track


def parse_expected(csv_path: str | Path, row: dict[str, str], kinds: list[str]) -> list[str]:
    """The row's ``expected`` kinds; an unknown kind is an error naming the CSV and the row's path."""
    expected = [k for k in re.split(r"[;\s]+", row["expected"] or "") if k]
    unknown = [k for k in expected if k not in kinds]
    if unknown:
        raise InputError(csv_path, f"row {row['path']!r}: unknown alert kind(s) {unknown}; known: {kinds}")
    return expected


def row_baseline(csv_path: str | Path, value: str | None, cfg: Config) -> str | None:
    """``auto`` or a configured baseline name as written; anything else is a JSON path beside the CSV."""
    value = (value or "").strip()
    if not value:
        return None
    if value.lower() == "auto" or value.lower() in cfg.audio.baselines:
        return value.lower()
    return str(resolve_path(csv_path, value))


def diary_depressed_score(report, cfg: Config) -> float | None:
    """The whole diary's depressed-voice score, from the diary-level evidence of any alert (None without one)."""
    from fusion.combine import depressed_score

    for alert in report.alerts:
        for ev in alert.evidence:
            if ev.sentence is None:
                voice_en = np.array([ev.voice[label] for label in cfg.labels.en])
                return round(depressed_score(voice_en, ev.prosody, cfg), 4)
    return None


def _run_row(csv_path: str | Path, row: dict[str, str], expected: list[str], cfg: Config) -> dict:
    from fusion.pipeline import analyze

    item = {"path": row["path"], "group": (row.get("group") or "").strip(), "expected": expected,
            "got": [], "depressed_score": None, "error": None}
    try:
        report = analyze(resolve_path(csv_path, row["path"]), transcript=row["transcript"],
                         baseline=row_baseline(csv_path, row.get("baseline"), cfg), config=cfg)
    except FusionError as exc:
        item["error"] = str(exc)
        return item
    item["got"] = [a.kind for a in report.alerts]
    item["depressed_score"] = diary_depressed_score(report, cfg)
    return item


def kind_metrics(items: list[dict], kind: str) -> dict:
    """Recall and false-alarm rate of one kind over the rows without an error (None where a group is empty)."""
    scored = [it for it in items if it["error"] is None]
    expecting = [kind in it["got"] for it in scored if kind in it["expected"]]
    others = [kind in it["got"] for it in scored if kind not in it["expected"]]
    return {"expected": len(expecting), "hits": sum(expecting),
            "recall": sum(expecting) / len(expecting) if expecting else None,
            "not_expected": len(others), "false_alarms": sum(others),
            "false_alarm_rate": sum(others) / len(others) if others else None}


def group_counts(items: list[dict], kinds: list[str]) -> dict:
    """group → rows, error rows and the rows that raised each kind."""
    groups: dict[str, dict] = {}
    for it in items:
        g = groups.setdefault(it["group"], {"n": 0, "errors": 0, "fired": dict.fromkeys(kinds, 0)})
        g["n"] += 1
        g["errors"] += it["error"] is not None
        for kind in set(it["got"]):
            g["fired"][kind] += 1
    return dict(sorted(groups.items()))


def eval_alerts(csv_path: str | Path, config: Config | None = None, split: str | None = None,
                progress: bool = True) -> dict:
    """Recall and false-alarm rate per alert kind over a path,transcript,expected[,baseline,group] CSV."""
    cfg = config or default_config()
    kinds = list(ALERT_RULES)
    rows = read_rows(csv_path, ("path", "transcript", "expected"), split)
    expected = [parse_expected(csv_path, r, kinds) for r in rows]
    items = [_run_row(csv_path, rows[i], expected[i], cfg) for i in track(range(len(rows)), "alerts", progress)]
    return {"task": "alerts", "data": str(csv_path), "split": split, "n": len(items),
            "errors": sum(it["error"] is not None for it in items),
            "kinds": {kind: kind_metrics(items, kind) for kind in kinds},
            "groups": group_counts(items, kinds), "items": items}


def _rate(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"


def _width(text: str) -> int:
    """Terminal columns of ``text`` (Hangul and other wide characters count two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def summary(result: dict) -> str:
    """A plain-text summary of an ``eval_alerts`` result for the terminal."""
    head = f"alerts · {result['data']}" + (f" (split {result['split']})" if result.get("split") else "")
    kinds = list(result["kinds"])
    width = max(len(k) for k in kinds) + 2
    lines = [head, f"rows      {result['n']}  ({result['errors']} error rows, not scored)", "",
             "kind".ljust(width) + "recall  hits/expected  false alarms  rate"]
    for kind, m in result["kinds"].items():
        lines.append(f"{kind.ljust(width)}{_rate(m['recall'])}  {m['hits']:>6}/{m['expected']:<6}  "
                     f"{m['false_alarms']:>6}/{m['not_expected']:<5}{_rate(m['false_alarm_rate'])}")
    gwidth = max([_width(g) for g in result["groups"]] + [5]) + 2
    lines += ["", "rows raising each kind, by group", "group" + " " * (gwidth - 5) + "    n  "
              + "  ".join(kinds)]
    for group, g in result["groups"].items():
        cells = "  ".join(str(g["fired"][k]).rjust(len(k)) for k in kinds)
        errors = f"  ({g['errors']} errors)" if g["errors"] else ""
        lines.append(group + " " * (gwidth - _width(group)) + f"{g['n']:5d}  {cells}{errors}")
    failed = [it for it in result["items"] if it["error"]]
    if failed:
        lines += ["", "error rows"] + [f"  {it['error']}" for it in failed]
    return "\n".join(lines)
