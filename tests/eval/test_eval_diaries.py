"""fusion.eval.diaries and fusion.train.words: the words half on diaries, with the real text model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fusion.cli import app
from fusion.errors import InputError
from fusion.eval.diaries import boundaries, eval_diaries, read_diaries

ROOT = Path(__file__).resolve().parents[2]


DIARIES = [
    {"id": "good", "polarity": "positive", "sentences": [
        {"text": "오늘은 날씨가 맑아서 기분이 좋았다.", "label": "기쁨"},
        {"text": "점심에 친구랑 새로 생긴 식당에 갔는데 음식이 맛있었다.", "label": "기쁨"},
        {"text": "오후에 회의 시간을 착각해서 조금 당황했다.", "label": "당황"},
        {"text": "내일도 오늘만 같았으면 좋겠다.", "label": "기쁨"}]},
    {"id": "bad", "polarity": "negative", "sentences": [
        {"text": "친구가 약속을 또 어겨서 너무 화가 났다.", "label": "분노"},
        {"text": "집에 와서도 계속 속상했다.", "label": "상처"},
        {"text": "내일 시험도 걱정돼서 잠이 안 온다.", "label": "불안"},
        {"text": "요즘은 그냥 다 우울하다.", "label": "슬픔"}]},
]


def diary_file(tmp_path, diaries=DIARIES):
    rows = [{**d, "source": "written", "unpunctuated": " ".join(s["text"].rstrip(".") for s in d["sentences"])}
            for d in diaries]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_clear_diaries_are_read_right_and_split_exactly(tmp_path, config):
    result = eval_diaries(diary_file(tmp_path), config)
    assert [(it["id"], it["read"], it["read_unpunctuated"]) for it in result["items"]] == [
        ("good", "positive", "positive"), ("bad", "negative", "negative")]
    assert result["polarity"]["accuracy"] == 1.0 and result["polarity"]["negative_read_positive"] == 0
    assert result["split"]["exact_count"] == 1.0 and result["split"]["boundaries"]["f1"] == 1.0
    assert result["sentences"]["n"] == 8 and result["sentences"]["macro_f1"] > 0.5


def test_boundaries_are_where_each_next_sentence_starts():
    assert boundaries(["가 나", "다", "라 마"], "가 나 다 라 마") == {4, 6}
    with pytest.raises(ValueError):
        boundaries(["가", "없다"], "가 나")


def test_a_line_that_is_no_diary_is_an_input_error_naming_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "x", "polarity": "happy", "sentences": []}\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 1"):
        read_diaries(path)


def test_the_shipped_sets_hold_the_written_diaries_in_every_polarity():
    for split, n in (("dev", 40), ("test", 64)):
        written = read_diaries(ROOT / "evalsets/diaries" / f"{split}.jsonl", source="written")
        assert len(written) == n
        assert {d["polarity"] for d in written} == {"positive", "negative", "mixed", "plain"}
        assert all(4 <= len(d["sentences"]) <= 8 for d in written)


def test_cli_eval_diaries_json(tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["eval", "diaries", str(diary_file(tmp_path)), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "polarity  accuracy 1.0000" in result.output
    assert json.loads(out.read_text(encoding="utf-8"))["task"] == "diaries"


def test_the_pleasant_shift_is_the_least_log_loss():
    from fusion.train.words import fit_shift

    rng = np.random.default_rng(0)
    z = rng.normal(size=4000)
    pleasant = rng.random(4000) < 1 / (1 + np.exp(-(z + 1.5)))
    assert fit_shift(1 / (1 + np.exp(-z)), pleasant) == pytest.approx(1.5, abs=0.15)


@pytest.mark.slow
def test_train_words_chooses_the_shipped_values_on_the_dev_diaries(config):
    from fusion.train.words import calibrate

    chosen = calibrate(ROOT / "evalsets/diaries/dev.jsonl", config)
    assert chosen["pleasant_shift"] == pytest.approx(config.fusion.pleasant_shift, abs=0.1)
    assert chosen["positive_words_valence"] == pytest.approx(config.alerts.positive_words_valence, abs=0.05)
    assert chosen["plain_words_emotion"] == pytest.approx(config.alerts.plain_words_emotion, abs=0.05)


def test_the_diary_alert_set_lays_positive_diaries_over_every_voice_and_the_others_over_sad_ones():
    """evalsets/alerts/make_set.py's diaries.csv rows: expectations follow the words and the voice."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_set", ROOT / "evalsets/alerts/make_set.py")
    make_set = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_set)
    joined = [{"path": f"audio/ko_joined/emg_{v}_0.flac", "group": "ko_joined " + v, "voice": v, "speaker": "emg",
               "expected": make_set.FLAGSHIP if v == "sad" else ""} for v in ("sad", "happy", "angry")]
    rows = make_set.diary_rows(joined + [{"group": "ko_clip sad", "voice": "sad"}],
                               ROOT / "evalsets/diaries/test.jsonl")
    positive = [r for r in rows if r["group"].startswith("positive words")]
    assert len(positive) == 22 * 3 and {r["voice"] for r in positive} == {"sad", "happy", "angry"}
    assert all((r["expected"] == make_set.FLAGSHIP) == (r["voice"] == "sad") for r in positive)
    others = [r for r in rows if not r["group"].startswith("positive words")]
    assert len(others) == 30 and all(r["voice"] == "sad" and r["expected"] == "" for r in others)
    committed = (ROOT / "evalsets/alerts/diaries.csv").read_text(encoding="utf-8").splitlines()
    assert len(committed) == 1 + 22 * 12 + 30 * 3
    dev = list(csv.DictReader((ROOT / "evalsets/alerts/diaries_dev.csv").open(encoding="utf-8")))
    assert len(dev) == 14 * 12 + 18 * 3 and {r["speaker"] for r in dev} == {make_set.DEV_SPEAKER}, \
        "the written dev diaries over the dev speaker's joined recordings only"
