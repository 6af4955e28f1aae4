"""``fusion eval alerts`` on real clips of ko_emotional's plain-to-emotional test speaker, real models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusion.alerts import FLAGSHIP
from fusion.cli import app
from fusion.errors import InputError
from fusion.eval.alerts import eval_alerts, summary

HAPPY_WORDS = "오늘 정말 행복했어. 친구들이랑 맛있는 저녁을 먹고 많이 웃었어."


def write_csv(path, rows):
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "transcript", "expected", "baseline", "group"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def alerts_csv(shared_data, tmp_path_factory):
    """A sad and a happy clip (absolute paths), one relative bad path, all under happy words."""
    emg = shared_data / "speech" / "ko_emotional" / "emg"
    folder = tmp_path_factory.mktemp("alerts")
    (folder / "broken.wav").write_bytes(b"not audio at all")
    return write_csv(folder / "alerts.csv", [
        {"path": str(emg / "emg00201.flac"), "transcript": HAPPY_WORDS, "expected": FLAGSHIP,
         "baseline": "auto", "group": "sad"},
        {"path": str(emg / "emg00101.flac"), "transcript": HAPPY_WORDS, "expected": "",
         "baseline": "male", "group": "happy"},
        {"path": "broken.wav", "transcript": HAPPY_WORDS, "expected": FLAGSHIP, "baseline": "", "group": "sad"},
    ])


@pytest.fixture(scope="module")
def result(alerts_csv):
    return eval_alerts(alerts_csv, progress=False)


def test_every_configured_kind_is_measured(result, config):
    assert list(result["kinds"]) == list(config.alerts.severity)
    assert result["task"] == "alerts" and result["n"] == 3


def test_counts_follow_from_the_rows(result):
    scored = [it for it in result["items"] if it["error"] is None]
    for kind, m in result["kinds"].items():
        expecting = [it for it in scored if kind in it["expected"]]
        others = [it for it in scored if kind not in it["expected"]]
        hits = sum(kind in it["got"] for it in expecting)
        false_alarms = sum(kind in it["got"] for it in others)
        assert (m["expected"], m["hits"], m["not_expected"], m["false_alarms"]) == \
               (len(expecting), hits, len(others), false_alarms)
        assert m["recall"] == (hits / len(expecting) if expecting else None)
        assert m["false_alarm_rate"] == (false_alarms / len(others) if others else None)
    assert result["kinds"][FLAGSHIP]["expected"] == 1 and result["kinds"][FLAGSHIP]["not_expected"] == 1


def test_rows_carry_expected_got_and_the_diary_score(result):
    """A row records the alerts of its diary's report and the score its diary-level flagship alert fired at (none
    without one): the sad voice under happy words raises it, the happy voice nothing."""
    from fusion import analyze

    sad, happy, _ = result["items"]
    assert sad["expected"] == [FLAGSHIP] and happy["expected"] == []
    for item, baseline in ((sad, "auto"), (happy, "male")):
        report = analyze(item["path"], transcript=HAPPY_WORDS, baseline=baseline)
        assert item["error"] is None and item["got"] == [a.kind for a in report.alerts]
        assert item["scores"] == {a.kind: a.score for a in report.alerts}
    assert FLAGSHIP in sad["got"] and happy["got"] == []


def test_the_evaluated_score_is_the_score_the_alert_fired_at(flagship_report, tmp_path):
    """eval alerts records the depressed-voice score of the README's demo row as the pipeline fired it."""
    samples = Path(__file__).resolve().parents[2] / "samples"
    words = (samples / "everyday_ko.txt").read_text(encoding="utf-8")
    row = {"path": str(samples / "sad_voice_ko.flac"), "transcript": words, "expected": FLAGSHIP, "baseline": "",
           "group": "demo"}
    (item,) = eval_alerts(write_csv(tmp_path / "demo.csv", [row]), progress=False)["items"]
    (alert,) = [a for a in flagship_report.alerts if a.kind == FLAGSHIP]
    assert item["scores"][FLAGSHIP] == alert.score


def test_an_unreadable_file_is_an_error_row_and_the_evaluation_goes_on(result, alerts_csv):
    bad = result["items"][2]
    assert result["errors"] == 1
    assert bad["got"] == [] and str(alerts_csv.parent / "broken.wav") in bad["error"]
    assert result["groups"]["sad"] == {"n": 2, "errors": 1, "fired": result["groups"]["sad"]["fired"]}
    assert "broken.wav" in summary(result)


def test_groups_count_the_rows_that_raised_each_kind(result):
    for group, g in result["groups"].items():
        rows = [it for it in result["items"] if it["group"] == group]
        assert g["n"] == len(rows)
        assert g["fired"] == {k: sum(k in it["got"] for it in rows) for k in result["kinds"]}


def test_unknown_expected_kind_names_the_csv_and_row(tmp_path):
    bad = write_csv(tmp_path / "bad.csv", [{"path": "a.wav", "transcript": "좋아", "expected": "happy_voice",
                                            "baseline": "", "group": ""}])
    with pytest.raises(InputError, match=r"bad\.csv.*a\.wav.*happy_voice"):
        eval_alerts(bad, progress=False)


def test_a_missing_column_names_the_csv(tmp_path):
    bad = tmp_path / "nocol.csv"
    bad.write_text("path,transcript\na.wav,좋아\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"nocol\.csv.*expected"):
        eval_alerts(bad, progress=False)


def test_cli_writes_json_and_prints_the_table(alerts_csv, tmp_path):
    out = tmp_path / "alerts.json"
    run = CliRunner().invoke(app, ["eval", "alerts", str(alerts_csv), "--json", str(out), "--quiet"])
    assert run.exit_code == 0, run.output
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["n"] == 3 and written["errors"] == 1
    assert FLAGSHIP in run.output and "false alarms" in run.output


def test_auto_baseline_mode_needs_speakers_and_personal_is_the_csvs(alerts_csv):
    with pytest.raises(InputError, match="speaker"):
        eval_alerts(alerts_csv, progress=False, baseline_mode="auto")
    with pytest.raises(ValueError, match="alerts_personal"):
        eval_alerts(alerts_csv, progress=False, baseline_mode="personal")


def test_auto_baseline_mode_builds_each_rows_from_its_speakers_others(shared_data, tmp_path, config):
    """Three emg clips and a recording joined from two of them, under a service that builds a baseline from two
    diaries: the joined one shares sources with both, so one other recording is left to it and it is heard against
    the reference; each clip keeps at least two others (the joined one is left out of the baselines of the clips it
    contains)."""
    import numpy as np
    import soundfile as sf

    emg = shared_data / "speech" / "ko_emotional" / "emg"
    clips = ["emg00001.flac", "emg00101.flac", "emg00201.flac"]
    joined = np.concatenate([sf.read(emg / clips[0], dtype="float32")[0], sf.read(emg / clips[2], dtype="float32")[0]])
    sf.write(tmp_path / "joined.flac", joined, 16000)
    rows = [{"path": str(emg / c), "transcript": HAPPY_WORDS, "expected": "", "baseline": "", "group": "clip",
             "speaker": "emg", "sources": c} for c in clips]
    rows.append({"path": "joined.flac", "transcript": HAPPY_WORDS, "expected": "", "baseline": "", "group": "joined",
                 "speaker": "emg", "sources": f"{clips[0]};{clips[2]}"})
    path = tmp_path / "auto.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    two = config.with_updates(history={"min_diaries": 2})
    result = eval_alerts(path, progress=False, baseline_mode="auto", config=two)
    assert result["baseline_mode"] == "auto" and result["reference_rows"] == 1
    names = [it["baseline"] for it in result["items"]]
    assert names[:3] == ["personal-auto:emg"] * 3 and names[3] in ("male", "female"), names
    assert set(result["per_speaker"]) == {"emg"}
    assert "baseline  auto" in summary(result) and "by speaker" in summary(result)


def test_cli_bad_csv_exits_with_the_file_named(tmp_path):
    run = CliRunner().invoke(app, ["eval", "alerts", str(tmp_path / "absent.csv")])
    assert run.exit_code == 2
    assert "absent.csv" in run.output


def test_cli_under_conditions_evaluates_each_and_keeps_error_rows(alerts_csv, tmp_path):
    out = tmp_path / "cond.json"
    run = CliRunner().invoke(app, ["eval", "alerts", str(alerts_csv), "--degrade", "clean,near", "--json", str(out),
                                   "--quiet"])
    assert run.exit_code == 0, run.output
    written = json.loads(out.read_text(encoding="utf-8"))
    assert list(written["conditions"]) == ["clean", "near"]
    for result in written["conditions"].values():
        assert result["n"] == 3 and result["errors"] == 1 and result["data"] == str(alerts_csv)
    assert "near" in run.output and "hits" in run.output
