"""``fusion eval alerts``: how often the words-vs-voice alerts fire where they should, and where they should not.

``eval_alerts`` runs the public ``fusion.analyze`` on each row of a CSV with columns
``path``, ``transcript`` (the words, given instead of speech-to-text), ``expected`` (the
alert kinds expected, separated by ``;`` or spaces, may be empty) and optionally
``baseline`` (``auto``, a configured name such as ``male``, or a personal baseline JSON
relative to the CSV's folder), ``group`` (a label for the per-group counts), ``speaker`` and
``sources`` (the recordings a row is made of, ``;``-separated). Per alert kind of
``[alerts.severity]`` it gives recall (rows expecting the kind that got it) and false-alarm rate
(rows not expecting it that got it), and per speaker the same for the flagship kind; each row keeps
the score each alert it raised fired at, as its report gives it. A row whose file cannot be analysed
is reported as an error row and left out of both; the evaluation goes on.

``baseline_mode`` overrides the ``baseline`` column (``fusion.eval.baselines``): ``reference``
hears every row against the configured reference nearest its pitch (``auto`` in the column);
``auto`` against the personal-auto baseline of its speaker's other rows (leaving out the rows that
share a source recording with it). A hand-made personal baseline is a ``baseline`` column naming
JSONs (``alerts_personal.csv``).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from fusion.alerts import FLAGSHIP, MISMATCH_WORDS
from fusion.config import Config, default_config
from fusion.errors import FusionError, InputError
from fusion.eval.baselines import check_mode, clip_stats, leave_one_out
from fusion.eval.text import read_rows, resolve_path
from fusion.progress import track

BASELINE_WORDS = {"csv": "each row's baseline column", "reference": "the configured reference nearest each row's pitch",
                  "auto": "personal-auto per row, from its speaker's other rows"}


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


def _run_row(csv_path: str | Path, row: dict[str, str], expected: list[str], cfg: Config, baseline=None) -> dict:
    """One row through ``fusion.analyze`` (``baseline``, when given, instead of the row's column)."""
    from fusion.pipeline import analyze

    item = {"path": row["path"], "group": (row.get("group") or "").strip(),
            "speaker": (row.get("speaker") or "").strip(), "expected": expected,
            "got": [], "scores": {}, "withheld": [], "baseline": None, "error": None}
    try:
        report = analyze(resolve_path(csv_path, row["path"]), transcript=row["transcript"],
                         baseline=baseline or row_baseline(csv_path, row.get("baseline"), cfg), config=cfg)
    except FusionError as exc:
        item["error"] = str(exc)
        return item
    item["got"] = [a.kind for a in report.alerts]
    item["scores"] = {a.kind: a.score for a in report.alerts}  # as the rule fired: the report's own
    item["withheld"] = report.quality.withheld if report.quality else []
    item["baseline"] = report.voice.baseline
    return item


def row_baselines(csv_path: str | Path, rows: list[dict[str, str]], mode: str | None, cfg: Config,
                  progress: bool = True) -> list:
    """Per row, the baseline ``mode`` gives it (None: the row's own ``baseline`` column, or the reference)."""
    if mode is None:
        return [None] * len(rows)
    if check_mode(mode) == "personal":
        raise ValueError("eval alerts: a personal baseline comes from the CSV's baseline column (JSON paths, "
                         "as in alerts_personal.csv); --baseline-mode takes reference or auto")
    if mode == "reference":
        return ["auto"] * len(rows)
    missing = [r["path"] for r in rows if not (r.get("speaker") or "").strip()]
    if missing:
        raise InputError(csv_path, f"--baseline-mode auto needs a speaker on every row; {len(missing)} lack one, "
                                   f"e.g. {missing[0]!r}")
    stats, readable = [], []
    for r in track(rows, "voice stats", progress):  # a file that cannot be read is the error row it will be
        try:
            stats.extend(clip_stats([resolve_path(csv_path, r["path"])], cfg, progress=False))
            readable.append(True)
        except FusionError:
            stats.append(None)
            readable.append(False)
    speakers = [r["speaker"].strip() if ok else "" for r, ok in zip(rows, readable)]
    sources = [frozenset(x for x in re.split(r"[;\s]+", r.get("sources") or "") if x) or frozenset([r["path"]])
               for r in rows]
    return [b if b is not None else "auto" for b in leave_one_out(stats, speakers, cfg, sources)]


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
                progress: bool = True, baseline_mode: str | None = None) -> dict:
    """Recall and false-alarm rate per alert kind over a path,transcript,expected[,baseline,group,speaker] CSV."""
    cfg = config or default_config()
    kinds = list(MISMATCH_WORDS)
    rows = read_rows(csv_path, ("path", "transcript", "expected"), split)
    expected = [parse_expected(csv_path, r, kinds) for r in rows]
    bases = row_baselines(csv_path, rows, baseline_mode, cfg, progress)
    items = [_run_row(csv_path, rows[i], expected[i], cfg, bases[i])
             for i in track(range(len(rows)), "alerts", progress)]
    speakers = sorted({it["speaker"] for it in items if it["speaker"]})
    return {"task": "alerts", "data": str(csv_path), "split": split, "n": len(items),
            "baseline_mode": baseline_mode or "csv",
            "reference_rows": sum(isinstance(b, str) for b in bases) if baseline_mode == "auto" else None,
            "errors": sum(it["error"] is not None for it in items),
            "kinds": {kind: kind_metrics(items, kind) for kind in kinds},
            "per_speaker": {s: kind_metrics([it for it in items if it["speaker"] == s], FLAGSHIP) for s in speakers},
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
    mode = result.get("baseline_mode", "csv")
    fallback = f"; {result['reference_rows']} rows on the reference" if result.get("reference_rows") else ""
    lines = [head, f"rows      {result['n']}  ({result['errors']} error rows, not scored)",
             f"baseline  {mode}  ({BASELINE_WORDS[mode]}{fallback})", "",
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
    if result.get("per_speaker"):
        lines += ["", f"{FLAGSHIP} by speaker", "speaker".ljust(20) + "recall  hits/expected  false alarms  rate"]
        for speaker, m in result["per_speaker"].items():
            lines.append(f"{speaker.ljust(20)}{_rate(m['recall'])}  {m['hits']:>6}/{m['expected']:<6}  "
                         f"{m['false_alarms']:>6}/{m['not_expected']:<5}{_rate(m['false_alarm_rate'])}")
    failed = [it for it in result["items"] if it["error"]]
    if failed:
        lines += ["", "error rows"] + [f"  {it['error']}" for it in failed]
    return "\n".join(lines)
