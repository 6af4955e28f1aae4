"""A person's diaries over time: one timeline entry per report, weekly summaries and the drift alert.

``timeline`` turns dated reports into ``TimelineEntry`` values in date order; ``trend_alert`` weighs the
voice of the recent diaries (the last ``[history] window_days``) against the person's earlier ones with
robust z-scores, and raises ``voice_lower_than_usual`` (``fusion.alerts.DRIFT_KIND``) only when enough
diaries stand on both sides, never from a single one. The service and ``fusion history`` share all of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fusion.alerts import DRIFT_WORDS, SEVERITIES, SIGNAL_WORDS, TREND_SIGNALS
from fusion.config import HistoryConfig
from fusion.dates import utc
from fusion.files import csv_text
from fusion.report import DiaryReport, TrendAlert, TrendSignal, ValenceArousal

_MAD_TO_SD = 1.4826  # 1.4826 MAD estimates the standard deviation of normal data


class TimelineEntry(BaseModel):
    """One diary on a person's timeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    recorded_at: datetime
    duration_s: float
    words_va: ValenceArousal | None = Field(description="the words' point (None: no words recognised)")
    voice_va: ValenceArousal | None = Field(description="the voice's point (None: no voiced audio)")
    text_top: str | None
    voice_top: str | None
    pitch_hz: float | None
    energy_db: float | None
    baseline: str
    alerts: list[str] = Field(description="alert kinds of the diary, and voice_lower_than_usual where the diaries up "
                                          "to this one raise it")
    url: str | None = Field(None, description="the diary's report")


class WeekSummary(BaseModel):
    """The diaries of one ISO week (Monday to Sunday, UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    week: str = Field(description="ISO week, e.g. 2026-W48")
    start: datetime
    diaries: int
    words_valence: float | None = Field(description="mean over the week's diaries with words")
    voice_valence: float | None = Field(description="mean over the week's diaries with a voice")
    alerts: dict[str, int] = Field(description="alert kind → diaries of the week that carry it")


def entry(diary_id: str, report: DiaryReport, recorded_at: datetime | None = None, url: str | None = None,
          ) -> TimelineEntry:
    """The timeline entry of one report (``recorded_at`` overrides the report's own)."""
    when = recorded_at or report.recorded_at
    if when is None:
        raise ValueError(f"diary {diary_id}: the report has no recorded_at, and none was given")
    prosody = report.voice.prosody
    return TimelineEntry(
        id=diary_id, recorded_at=utc(when), duration_s=report.duration_s,
        words_va=report.words_va if report.sentences else None,
        voice_va=report.voice_va if report.voice.top is not None else None,
        text_top=report.text.top, voice_top=report.voice.top,
        pitch_hz=prosody.pitch_hz if prosody else None, energy_db=prosody.energy_db if prosody else None,
        baseline=report.voice.baseline, alerts=[a.kind for a in report.alerts], url=url,
    )


def timeline(entries: Iterable[TimelineEntry], cfg: HistoryConfig) -> list[TimelineEntry]:
    """The entries in date order, each with ``voice_lower_than_usual`` added where the diaries up to it raise it."""
    ordered = sorted(entries, key=lambda e: (e.recorded_at, e.id))
    out = []
    for i, e in enumerate(ordered):
        alert = trend_alert(ordered[: i + 1], cfg)
        out.append(e if alert is None or alert.kind in e.alerts
                   else e.model_copy(update={"alerts": [*e.alerts, alert.kind]}))
    return out


def _signal_values(entries: list[TimelineEntry], reference_hz: float | None) -> dict[str, list[float]]:
    """Each signal's values over ``entries`` (pitch in semitones against ``reference_hz``), missing ones left out."""
    values: dict[str, list[float]] = {name: [] for name in TREND_SIGNALS}
    for e in entries:
        if e.voice_va is not None:
            values["voice_valence"].append(e.voice_va.valence)
        if e.pitch_hz and reference_hz:
            values["pitch_semitones"].append(12.0 * math.log2(e.pitch_hz / reference_hz))
        if e.energy_db is not None:
            values["energy_db"].append(e.energy_db)
    return values


def trend_alert(history: list[TimelineEntry], cfg: HistoryConfig) -> TrendAlert | None:
    """``voice_lower_than_usual`` as of the last of ``history`` (date-ordered), or None.

    Recent = the diaries within ``window_days`` before the last one (it included); usual = the ``max_usual`` diaries
    before those (a person's usual of years ago is not their usual now, and the cost stays bounded).
    Each signal measured in at least ``min_recent`` recent and ``min_usual`` usual diaries gets a robust z-score;
    the alert fires when the mean of their negated z-scores reaches ``min_score``.
    """
    if not history:
        return None
    try:
        since = history[-1].recorded_at - timedelta(days=cfg.window_days)
    except OverflowError:  # the last diary is dated in the first days of year 1: every diary is recent
        since = None
    first = len(history)
    while first > 0 and (since is None or history[first - 1].recorded_at > since):
        first -= 1
    recent, usual = history[first:], history[max(0, first - cfg.max_usual):first]
    if len(recent) < cfg.min_recent or len(usual) < cfg.min_usual:
        return None
    pitches = [e.pitch_hz for e in usual if e.pitch_hz]
    reference = float(np.median(pitches)) if pitches else None
    now, before = _signal_values(recent, reference), _signal_values(usual, reference)
    signals = {}
    for name in TREND_SIGNALS:
        if len(now[name]) < cfg.min_recent or len(before[name]) < cfg.min_usual:
            continue
        usual_median = float(np.median(before[name]))
        spread = max(_MAD_TO_SD * float(np.median(np.abs(np.asarray(before[name]) - usual_median))),
                     cfg.z_floor[name])
        recent_median = float(np.median(now[name]))
        signals[name] = TrendSignal(recent=round(recent_median, 3), usual=round(usual_median, 3),
                                    z=round((recent_median - usual_median) / spread, 3))
    if not signals:
        return None
    score = float(np.mean([-s.z for s in signals.values()]))
    if score < cfg.min_score:
        return None
    severity = SEVERITIES[max(0, sum(score >= step for step in cfg.severity) - 1)]
    return TrendAlert(severity=severity, score=round(score, 3), window_days=cfg.window_days,
                      recent_diaries=len(recent), usual_diaries=len(usual), since=since, signals=signals)


def weekly(entries: Iterable[TimelineEntry]) -> list[WeekSummary]:
    """One summary per ISO week that holds a diary, in date order."""
    weeks: dict[str, list[TimelineEntry]] = {}
    for e in sorted(entries, key=lambda e: e.recorded_at):
        year, week, _ = e.recorded_at.isocalendar()
        weeks.setdefault(f"{year}-W{week:02d}", []).append(e)
    out = []
    for name, group in weeks.items():
        first = group[0].recorded_at
        start = (first - timedelta(days=first.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        words = [e.words_va.valence for e in group if e.words_va is not None]
        voice = [e.voice_va.valence for e in group if e.voice_va is not None]
        kinds: dict[str, int] = {}
        for e in group:
            for kind in set(e.alerts):
                kinds[kind] = kinds.get(kind, 0) + 1
        out.append(WeekSummary(week=name, start=start, diaries=len(group),
                               words_valence=round(float(np.mean(words)), 3) if words else None,
                               voice_valence=round(float(np.mean(voice)), 3) if voice else None,
                               alerts=dict(sorted(kinds.items()))))
    return out


def describe_trend(alert: TrendAlert) -> list[str]:
    """The drift alert in plain sentences (the timeline page, the terminal and the service alike): what, over
    which diaries, then each signal's recent and usual medians and robust z-score."""
    lines = [DRIFT_WORDS,
             f"The last {alert.window_days:g} days (since {alert.since:%Y-%m-%d}): {alert.recent_diaries} diaries, "
             f"against {alert.usual_diaries} earlier ones; severity {alert.severity}, score {alert.score:.1f}."]
    for name, signal in alert.signals.items():
        what, unit = SIGNAL_WORDS[name]
        lines.append(f"{what.capitalize()}: recent median {signal.recent:+.2f}, usual {signal.usual:+.2f} ({unit}); "
                     f"z = {signal.z:+.1f}.")
    return lines


CSV_COLUMNS = ("id", "recorded_at", "duration_s", "words_valence", "words_arousal", "voice_valence", "voice_arousal",
               "text_top", "voice_top", "alert_kinds")


def entries_csv(entries: Iterable[TimelineEntry]) -> str:
    """One CSV row per diary, in the given order: when, how long, both points, both top labels, alert kinds."""
    return csv_text(CSV_COLUMNS, ([e.id, e.recorded_at.isoformat(), e.duration_s,
                                   *(("", "") if e.words_va is None else (e.words_va.valence, e.words_va.arousal)),
                                   *(("", "") if e.voice_va is None else (e.voice_va.valence, e.voice_va.arousal)),
                                   e.text_top or "", e.voice_top or "", ";".join(e.alerts)] for e in entries))
