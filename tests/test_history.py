"""The drift alert and the timeline on synthetic histories: the cases that must alert and those that must not."""

from datetime import datetime, timedelta, timezone

import pytest

from fusion.alerts import DRIFT_KIND
from fusion.config import default_config
from fusion.dates import parse_time, recording_problem, utc
from fusion.history import TimelineEntry, timeline, trend_alert, weekly
from fusion.report import ValenceArousal

CFG = default_config().history
START = datetime(2026, 10, 1, 21, 0, tzinfo=timezone.utc)


def diary(day: int, valence: float = 0.1, pitch: float = 200.0, energy: float = -20.0, alerts=()) -> TimelineEntry:
    # small day-to-day wobble, as real diaries have
    wobble = ((day * 7) % 5 - 2) / 2
    return TimelineEntry(id=f"d{day:03d}", recorded_at=START + timedelta(days=day), duration_s=60.0,
                         words_va=ValenceArousal(valence=0.3, arousal=0.0),
                         voice_va=ValenceArousal(valence=valence + 0.03 * wobble, arousal=0.0),
                         text_top="기쁨", voice_top="HAPPY", pitch_hz=pitch * 2 ** (0.2 * wobble / 12),
                         energy_db=energy + 0.5 * wobble, baseline="female", alerts=list(alerts))


def usual(days: int = 14) -> list[TimelineEntry]:
    return [diary(d) for d in range(days)]


def low(day: int) -> TimelineEntry:
    return diary(day, valence=-0.4, pitch=170.0, energy=-26.0)


LOW_WEEK = [low(d) for d in range(14, 21)]


def test_a_low_week_after_usual_ones_alerts_with_its_evidence():
    alert = trend_alert(usual() + LOW_WEEK, CFG)
    assert alert is not None and alert.kind == DRIFT_KIND
    assert alert.recent_diaries == 7 and alert.usual_diaries == 14
    assert set(alert.signals) == {"voice_valence", "pitch_semitones", "energy_db"}
    assert all(s.z < -CFG.min_score for s in alert.signals.values())
    assert alert.signals["pitch_semitones"].recent == pytest.approx(12 * __import__("math").log2(170 / 200), abs=0.2)
    assert alert.signals["energy_db"].usual == pytest.approx(-20.0, abs=0.6)
    assert alert.severity == "high" and alert.score >= CFG.severity[2]


@pytest.mark.parametrize("case, history", [
    ("one low diary", usual() + [low(14)]),
    ("one low diary after a week without any", usual() + [low(21)]),
    ("three low days in an ordinary week", usual() + [low(14), diary(15), low(16), diary(17), low(18), diary(19)]),
    ("a low week then an ordinary one", usual() + LOW_WEEK + [diary(d) for d in range(21, 28)]),
    ("too few usual diaries", [diary(d) for d in range(4)] + [low(d) for d in range(10, 17)]),
    ("an ordinary week", usual(21)),
    ("a better week", usual() + [diary(d, valence=0.6, pitch=215.0, energy=-17.0) for d in range(14, 21)]),
])
def test_no_alert(case, history):
    assert trend_alert(history, CFG) is None, case


def test_a_person_whose_voice_always_varies_a_lot_needs_a_larger_drop():
    swings = [diary(d, valence=(0.5 if d % 2 else -0.3), pitch=(230.0 if d % 2 else 175.0),
                    energy=(-16.0 if d % 2 else -25.0)) for d in range(14)]
    # the same low week that alerts against a steady voice sits within this person's own range
    assert trend_alert(swings + LOW_WEEK, CFG) is None


def test_silent_recordings_weigh_nothing():
    silent = [diary(d).model_copy(update={"voice_va": None, "pitch_hz": None, "energy_db": None})
              for d in range(14, 21)]
    assert trend_alert(usual() + silent, CFG) is None


def test_timeline_orders_by_date_and_marks_where_the_drift_starts():
    history = usual() + LOW_WEEK
    shuffled = history[::2] + history[1::2]
    entries = timeline(shuffled, CFG)
    assert [e.id for e in entries] == [e.id for e in history]
    marked = [e.id for e in entries if DRIFT_KIND in e.alerts]
    # from the fourth low day on, when low days are most of the last week's diaries
    assert marked == ["d017", "d018", "d019", "d020"]


def test_weekly_summary_counts_diaries_and_alerts_per_iso_week():
    history = timeline(usual() + LOW_WEEK, CFG)
    weeks = weekly(history)
    assert sum(w.diaries for w in weeks) == len(history)
    assert [w.start.weekday() for w in weeks] == [0] * len(weeks)
    assert sum(w.alerts.get(DRIFT_KIND, 0) for w in weeks) == 4
    assert weeks[0].voice_valence == pytest.approx(0.1, abs=0.05)


def test_only_the_latest_usual_diaries_count():
    """A person's usual is their last ``max_usual`` diaries before the recent ones, not every diary they ever kept:
    a year of a lower voice long ago does not hide a drop from how they have sounded lately."""
    long_ago = [diary(d, valence=-0.4, pitch=170.0, energy=-26.0) for d in range(-400, -300)]
    lately = [diary(d) for d in range(0, 60)]
    low_week = [low(d) for d in range(60, 67)]
    alert = trend_alert(long_ago + lately + low_week, CFG)
    assert alert is not None and alert.usual_diaries == CFG.max_usual == 60
    assert trend_alert(long_ago + lately + low_week, CFG.model_copy(update={"max_usual": 200})) is None


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_kept_as_text():
    """A diary named ``=cmd|' -C calc'!A0.flac`` starts its ``fusion history --csv`` row with ``'``; negative
    numbers stay numbers."""
    import csv
    import io

    from fusion.history import entries_csv

    entry = low(0).model_copy(update={"id": "=cmd|' -C calc'!A0.flac"})
    (row,) = csv.DictReader(io.StringIO(entries_csv([entry])))
    assert row["id"] == "'=cmd|' -C calc'!A0.flac" and float(row["voice_valence"]) < 0


@pytest.mark.parametrize("text, problem", [
    ("0001-01-01T00:00:00+14:00", "0001-01-01 is before 1970"),
    ("9999-12-31T23:59:59-14:00", "9999-12-31 23:59 is more than a day in the future")])
def test_an_offset_past_the_calendar_s_edge_is_an_out_of_range_date_not_an_overflow(text, problem):
    """Every caller (service, fusion batch --dates, fusion history) reads dates through utc()."""
    moment = parse_time(text)
    assert moment.tzinfo is timezone.utc and recording_problem(moment) == problem
    assert utc(datetime.fromisoformat(text)) == moment


def test_diaries_dated_in_the_first_days_of_year_1_are_read_without_an_overflow():
    """A report may carry any date; a history whose last diary is on 0001-01-01 once overflowed going back a week."""
    first = datetime(1, 1, 1, tzinfo=timezone.utc)
    history = [e.model_copy(update={"recorded_at": first + (e.recorded_at - START) / 1000}) for e in usual()]
    assert trend_alert(history[-1:], CFG) is None
    assert [e.id for e in timeline(history, CFG)] == [e.id for e in history]
